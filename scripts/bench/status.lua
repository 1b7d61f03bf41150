-- wrk script: Get Payment Status (GET /payment/status/{id}) over the ids of a file.
--
--   wrk -t T -c C -d D -s scripts/bench/status.lua BASE_URL -- IDS_FILE [AUTH ...]
--
-- IDS_FILE holds transactionIds, one a line (create.lua writes it). Each thread cycles through
-- all of them from its own starting point, sending one of the AUTH values as its
-- Authorization header, in turn (none when there is none).

dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local requests = {}
local next_one = 0

function init(args)
   -- args[0] is the URL; the script's own arguments follow.
   local headers = {}
   if #args >= 2 then
      headers["Authorization"] = args[2 + index % (#args - 1)]
   end
   for id in io.lines(args[1]) do
      if #id > 0 then
         requests[#requests + 1] = wrk.format("GET", "/payment/status/" .. id, headers)
      end
   end
   assert(#requests > 0, "no transactionId in " .. args[1])
   next_one = (index * 7919) % #requests
end

function request()
   next_one = next_one % #requests + 1
   return requests[next_one]
end
