// Commands sent to a Redis (or a sentinel) outside the library, to look at or steer the
// server in a test.
#pragma once

#include <hiredis/hiredis.h>

#include <string>
#include <vector>

namespace test {

// The reply's text: a string or status, an integer in decimal, the elements of an array that
// are strings or integers joined by spaces; empty for anything else or no answer.
inline std::string redis_raw(int port, const std::string& command) {
  redisContext* context = redisConnect("127.0.0.1", port);
  auto* reply = context != nullptr && context->err == 0
                    ? static_cast<redisReply*>(redisCommand(context, command.c_str()))
                    : nullptr;
  const auto text = [](const redisReply& r) -> std::string {
    if (r.type == REDIS_REPLY_STRING || r.type == REDIS_REPLY_STATUS) return {r.str, r.len};
    if (r.type == REDIS_REPLY_INTEGER) return std::to_string(r.integer);
    return {};
  };
  std::string out;
  if (reply != nullptr) {
    if (reply->type == REDIS_REPLY_ARRAY) {
      for (std::size_t i = 0; i < reply->elements; ++i) {
        out += (i == 0 ? "" : " ") + text(*reply->element[i]);
      }
    } else {
      out = text(*reply);
    }
    freeReplyObject(reply);
  }
  if (context != nullptr) redisFree(context);
  return out;
}

}  // namespace test
