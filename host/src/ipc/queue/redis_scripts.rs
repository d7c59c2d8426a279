//! The Lua scripts of the Redis queue (`redis.rs`): each runs atomically on
//! the server. Their keys and arguments are listed per script.

use std::sync::LazyLock;

use ::redis::Script;

/// KEYS: list, unfinished, closed, putters-waiting, getters-waiting.
/// ARGV: capacity, channel, messages... Returns 1 (put), 0 (no room: the
/// caller waits) or -1 (closed).
pub(super) static PUT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[3]) == 1 then return -1 end
local n = #ARGV - 2
if n == 0 then return 1 end
local len = redis.call('LLEN', KEYS[1])
if len + n > tonumber(ARGV[1]) then
  redis.call('SET', KEYS[4], 1)
  return 0
end
for i = 3, #ARGV, 1000 do
  redis.call('RPUSH', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
redis.call('INCRBY', KEYS[2], n)
if redis.call('DEL', KEYS[5]) == 1 then redis.call('PUBLISH', ARGV[2], 'put') end
return 1
",
    )
});

/// KEYS: list, in-flight, unfinished, closed, consumers, getters-waiting,
/// putters-waiting. ARGV: max, acknowledged (0/1), channel, member, dones
/// (the consumer's running total), expected in-flight (-1: do not
/// reconcile), acknowledged messages... Applies the acknowledgements, then
/// takes up to `max` messages (0: none). Returns the messages (empty: none
/// now) or -1 (closed and drained). In at-most-once mode the in-flight key
/// is a hash of running totals, `taken` and `done`, so that the messages of
/// a reply never read are counted too, and a total sent again after a lost
/// reply is applied once.
pub(super) static GET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local done = 0
if ARGV[2] ~= '1' then
  local applied = tonumber(redis.call('HGET', KEYS[2], 'done') or 0)
  if tonumber(ARGV[5]) > applied then
    done = tonumber(ARGV[5]) - applied
    redis.call('HSET', KEYS[2], 'done', ARGV[5])
  end
end
for i = 7, #ARGV do
  if redis.call('LREM', KEYS[2], 1, ARGV[i]) == 1 then done = done + 1 end
end
if done > 0 and redis.call('DECRBY', KEYS[3], done) <= 0 then
  redis.call('PUBLISH', ARGV[3], 'done')
end
local expected = tonumber(ARGV[6])
if expected >= 0 then
  for i = 1, redis.call('LLEN', KEYS[2]) - expected do
    redis.call('LMOVE', KEYS[2], KEYS[1], 'RIGHT', 'LEFT')
  end
end
local max = tonumber(ARGV[1])
if max == 0 then return {} end
local len = redis.call('LLEN', KEYS[1])
if len == 0 then
  if redis.call('EXISTS', KEYS[4]) == 1 then return -1 end
  redis.call('SET', KEYS[6], 1)
  return {}
end
local items
if ARGV[2] == '1' then
  redis.call('SADD', KEYS[5], ARGV[4])
  items = {}
  for i = 1, math.min(max, len) do
    items[i] = redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')
  end
else
  items = redis.call('LPOP', KEYS[1], max)
  redis.call('HINCRBY', KEYS[2], 'taken', #items)
end
if redis.call('DEL', KEYS[7]) == 1 then redis.call('PUBLISH', ARGV[3], 'space') end
return items
",
    )
});

/// A consumer of an acknowledged queue ends. KEYS: list, in-flight,
/// unfinished, consumers. ARGV: channel, member, acknowledged messages...
/// Applies the acknowledgements and puts the rest back at the head, in
/// order. Returns how many went back.
pub(super) static REQUEUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local done = 0
for i = 3, #ARGV do
  if redis.call('LREM', KEYS[2], 1, ARGV[i]) == 1 then done = done + 1 end
end
if done > 0 and redis.call('DECRBY', KEYS[3], done) <= 0 then
  redis.call('PUBLISH', ARGV[1], 'done')
end
local moved = 0
while redis.call('LMOVE', KEYS[2], KEYS[1], 'RIGHT', 'LEFT') do moved = moved + 1 end
redis.call('SREM', KEYS[4], ARGV[2])
if moved > 0 then redis.call('PUBLISH', ARGV[1], 'put') end
return moved
",
    )
});

/// A consumer of an at-most-once queue ends. KEYS: unfinished, lost,
/// in-flight totals. ARGV: channel, dones (the consumer's running total).
/// Whatever it took and did not mark done is lost, including what a take
/// whose reply was never read took. Run again (its reply lost), it finds
/// the totals equal and changes nothing; they expire after an hour.
pub(super) static SETTLE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local applied = tonumber(redis.call('HGET', KEYS[3], 'done') or 0)
local done = math.max(tonumber(ARGV[2]), applied)
local lost = tonumber(redis.call('HGET', KEYS[3], 'taken') or 0) - done
redis.call('HSET', KEYS[3], 'taken', done, 'done', done)
redis.call('PEXPIRE', KEYS[3], 3600000)
if lost < 0 then lost = 0 end
if lost > 0 then redis.call('INCRBY', KEYS[2], lost) end
local n = done - applied + lost
if n > 0 and redis.call('DECRBY', KEYS[1], n) <= 0 then
  redis.call('PUBLISH', ARGV[1], 'done')
end
return n
",
    )
});

/// Puts back what consumers of dead hosts held. KEYS: consumers, list.
/// ARGV: in-flight key prefix, host lease key prefix, channel. Returns how
/// many messages went back.
pub(super) static REAP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local moved = 0
for _, member in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local host = string.match(member, '^([^/]+)/')
  if host and redis.call('EXISTS', ARGV[2] .. host) == 0 then
    local inflight = ARGV[1] .. member
    while redis.call('LMOVE', inflight, KEYS[2], 'RIGHT', 'LEFT') do moved = moved + 1 end
    redis.call('SREM', KEYS[1], member)
  end
end
if moved > 0 then redis.call('PUBLISH', ARGV[3], 'reaped') end
return moved
",
    )
});

/// KEYS: list, closed, waiting marker. ARGV: capacity (0: ready to get).
/// Returns 1 when the operation would not wait, else leaves the marker.
pub(super) static READY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local len = redis.call('LLEN', KEYS[1])
local cap = tonumber(ARGV[1])
if redis.call('EXISTS', KEYS[2]) == 1 then return 1 end
if (cap == 0 and len > 0) or (cap > 0 and len < cap) then return 1 end
redis.call('SET', KEYS[3], 1)
return 0
",
    )
});
