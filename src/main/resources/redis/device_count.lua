-- A device's pushes in one minute: KEYS[1] the device's counter for that minute, ARGV[1] how many
-- pushes to add, ARGV[2] the counter's time to live in seconds (set when the minute's first push
-- creates it). Answers the count with these added.
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
if n == tonumber(ARGV[1]) then
    redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return n
