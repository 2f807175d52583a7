-- Argo CD health of a mlops.dev/v1alpha1 TrainingRun.
-- Built on status.observedGeneration and the Ready condition the operator writes, with status.phase and
-- status.promotion for what Ready alone does not say; uses no Lua standard library (Argo CD runs health
-- scripts without them unless useOpenLibs is set).
local hs = {}

local function condition(status, kind)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function text(value)
  if value == nil then
    return ""
  end
  return tostring(value)
end

local generation = tonumber((obj.metadata or {}).generation)
local status = obj.status
local observed = nil
if status ~= nil then
  observed = tonumber(status.observedGeneration)
end
if observed == nil or (generation ~= nil and observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. text(generation or 1)
  return hs
end

local ready = condition(status, "Ready")
local promotion = status.promotion
if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report the Ready condition"
elseif ready.status == "True" then
  -- Succeeded. A run waiting for its manual promotion approval is suspended until someone approves it.
  if promotion ~= nil and promotion.decision == "PendingApproval" then
    hs.status = "Suspended"
    hs.message = "PendingApproval: " .. text(promotion.message)
  elseif promotion ~= nil and promotion.decision ~= nil then
    hs.status = "Healthy"
    hs.message = "Succeeded; promotion " .. text(promotion.decision) .. ": " .. text(promotion.message)
  else
    hs.status = "Healthy"
    hs.message = text(ready.message)
  end
elseif status.phase == "Failed" or ready.reason == "InvalidSpec" or ready.reason == "ArtifactStoreMissing" then
  -- JobFailed, DeadlineExceeded, DatasetNotReady (after datasetWaitSeconds), an invalid spec, no artifact store
  hs.status = "Degraded"
  hs.message = text(ready.reason) .. ": " .. text(ready.message)
else
  -- Pending (waiting for the Dataset) or Running (the training Job)
  hs.status = "Progressing"
  hs.message = text(ready.reason) .. ": " .. text(ready.message)
end
return hs
