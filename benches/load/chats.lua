-- wrk script: POST /api/v1/chats with {"message":"Hello"} as JSON. No cookie is sent, so
-- on the example server (`--auth none`) every request is a new anonymous user with a new
-- conversation; the request limiter is keyed by client IP, so all requests share one key.
wrk.method = "POST"
wrk.path = "/api/v1/chats"
wrk.body = '{"message":"Hello"}'
wrk.headers["Content-Type"] = "application/json"
