-- Argo CD health of a mlops.dev/v1alpha1 Dataset.
-- Built on status.observedGeneration and the Ready condition the operator writes; uses no Lua standard
-- library (Argo CD runs health scripts without them unless useOpenLibs is set).
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
if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report the Ready condition"
elseif ready.status == "True" then
  hs.status = "Healthy"
  hs.message = text(ready.message)
  if status.rows ~= nil then
    hs.message = hs.message .. " (" .. text(status.rows) .. " rows)"
  end
elseif ready.reason == "ValidationPending" then
  -- the first check Job of the source is under way
  hs.status = "Progressing"
  hs.message = text(ready.message)
else
  -- SchemaViolation, ChecksumMismatch, SourceUnavailable, ArtifactStoreMissing, InvalidSpec: a person must act
  hs.status = "Degraded"
  hs.message = text(ready.reason) .. ": " .. text(ready.message)
end
return hs
