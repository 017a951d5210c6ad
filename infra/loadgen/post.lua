-- POST a JSON body to the URL's path, rotating over WRK_INSTANCES variants of it: WRK_BODY with
-- "%d" replaced by the variant's number and "%r" by a random number (a value that changes).
-- WRK_AUTHORIZATION is the Authorization header.
local body_template = os.getenv("WRK_BODY")
local variants = tonumber(os.getenv("WRK_INSTANCES") or "32")
local headers = {["Content-Type"] = "application/json", ["Authorization"] = os.getenv("WRK_AUTHORIZATION")}
local counter = 0

init = function(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))  -- threads start the same second
end

request = function()
  counter = counter + 1
  local body = string.gsub(body_template, "%%d", tostring(counter % variants))
  body = string.gsub(body, "%%r", tostring(math.random(1, 999999999)))
  return wrk.format("POST", nil, headers, body)
end

done = dofile("/loadgen/report.lua")
