-- Argo CD health of a mlops.dev/v1alpha1 ModelDeployment.
-- Built on status.observedGeneration and the Ready condition the operator writes, with the Degraded and
-- Progressing conditions and status.pauseReason for the rollout; uses no Lua standard library (Argo CD runs
-- health scripts without them unless useOpenLibs is set).
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

-- Why a canary holds until a person acts (status.pauseReason), and what lets it go on.
local manual_gates = {
  PauseStep = "paused for a manual promote (annotation mlops.dev/promote)",
  InconclusiveAnalysis = "paused: analysis inconclusive, resume with the annotation mlops.dev/resume",
  SpecPaused = "paused by spec.paused",
}

local ready = condition(status, "Ready")
local degraded = condition(status, "Degraded")
local progressing = condition(status, "Progressing")
local canary = status.canary
if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report the Ready condition"
elseif ready.status == "True" then
  -- Scaling (kubectl scale, the autoscaler) is healthy: the version serves while pods come and go.
  hs.status = "Healthy"
  hs.message = text(ready.message)
  local stable = status.stable
  if stable ~= nil and tonumber(stable.readyReplicas or 0) ~= tonumber(stable.replicas or 0) then
    hs.message = hs.message .. " (scaling: " .. text(stable.readyReplicas or 0) .. " of " .. text(stable.replicas)
      .. " pods ready)"
  end
elseif ready.reason == "InvalidSpec" then
  hs.status = "Degraded"
  hs.message = "InvalidSpec: " .. text(ready.message)
elseif degraded ~= nil and degraded.status == "True" then
  -- a version was rolled back: the message names the metric and its value (or what was not ready)
  local rolled_back = ""
  local history = status.history
  if history ~= nil and history[1] ~= nil and history[1].outcome ~= "Promoted" then
    rolled_back = " " .. text(history[1].version)
  end
  hs.status = "Degraded"
  hs.message = "Rolled back" .. rolled_back .. " (" .. text(degraded.reason) .. "): " .. text(degraded.message)
elseif canary ~= nil and status.pauseReason ~= nil and manual_gates[status.pauseReason] ~= nil then
  hs.status = "Suspended"
  hs.message = text(canary.version) .. " at " .. text(canary.weight or 0) .. "%, step " .. text(canary.stepIndex)
    .. ": " .. manual_gates[status.pauseReason]
elseif canary ~= nil and progressing ~= nil then
  hs.status = "Progressing"
  hs.message = "Canary " .. text(progressing.message)
else
  -- ModelNotFound (no champion yet) or StableNotReady (server pods starting)
  hs.status = "Progressing"
  hs.message = text(ready.reason) .. ": " .. text(ready.message)
end
return hs
