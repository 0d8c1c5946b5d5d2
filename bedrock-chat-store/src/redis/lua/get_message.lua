-- One message. ARGV[4] user, [5] message id.
local chat = locate(ARGV[4], ARGV[5])
if not chat then return { 'not_found', {} } end
return { 'ok', { message_row(chat, ARGV[5]) } }
