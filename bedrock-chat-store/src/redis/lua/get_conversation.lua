-- One conversation. ARGV[4] user, [5] chat id.
if owner(ARGV[5]) ~= ARGV[4] then return { 'not_found', {} } end
return { 'ok', { conversation_row(ARGV[5]) } }
