-- wrk script: POST /api/v1/chats with {"message":"Hello"} as JSON, as browsers that each
-- keep their identity cookie and continue their own conversation.
--
-- BROWSERS (run.sh sets it) names a file of `COOKIE CHAT_ID` lines, one per simulated
-- browser: run.sh makes them before the timed run by sending one message per browser
-- without a cookie, as a browser's first visit does, and keeping the `Set-Cookie` value and
-- the `chat_id` of the answer. Each request here goes to the next browser in turn (round
-- robin) with its `Cookie: bedrock_chat_id=...` and `{"message":"Hello","chat_id":...}`,
-- so no request mints an identity or a conversation: each stores one exchange in an
-- existing conversation and reads its recent history for context. The request limiter
-- is keyed by client IP, so all requests still share one key (hence run.sh's huge
-- --rate-limit). The bare handler gets the very same requests (it ignores the cookie and
-- the chat id).
--
-- Without BROWSERS, every request is a first visit: no cookie and no chat id.
wrk.method = "POST"
wrk.path = "/api/v1/chats"
wrk.body = '{"message":"Hello"}'
wrk.headers["Content-Type"] = "application/json"

local requests = {}
local count = 0
local next_index = 0

function init(args)
    local path = os.getenv("BROWSERS")
    if path == nil or path == "" then
        return
    end
    for line in io.lines(path) do
        local cookie, chat_id = line:match("^(%S+)%s+(%S+)$")
        if cookie then
            count = count + 1
            requests[count] = wrk.format("POST", "/api/v1/chats", {
                ["Content-Type"] = "application/json",
                ["Cookie"] = "bedrock_chat_id=" .. cookie,
            }, '{"message":"Hello","chat_id":"' .. chat_id .. '"}')
        end
    end
end

function request()
    if count == 0 then
        return wrk.format()
    end
    next_index = next_index % count + 1
    return requests[next_index]
end
