// Messages between a process and its session's broker (one SOCK_SEQPACKET message each way), the
// broker's socket address and the program ids that clients claim.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ndshm/session.hpp"

namespace ndshm::detail {

inline constexpr std::uint32_t protocol_version = 2;
/// Largest message either side sends; LIST replies are split to stay below it.
inline constexpr std::size_t max_message = 64 * 1024;

/// The broker's socket address for session: versioned, so that a broker of another protocol version
/// (an earlier install still running) is never spoken to.
[[nodiscard]] std::string socket_address(std::string_view session);
/// What every socket_address of this user starts with.
[[nodiscard]] std::string address_prefix();

enum class op : std::uint32_t {
  hello = 1,   ///< name = claimed program id; first on every connection -> ok, value = broker pid,
               ///< program = the program the broker counts this connection in
  create,      ///< + fd; flags: named, persist -> ok | exists
  attach,      ///< ticket: one to redeem (0: none) -> ok + fd, size, meta | not_found
  release,     ///< no reply: this process no longer maps name
  hold,        ///< after fork/reconnect: this process maps name -> ok | not_found
  ticket,      ///< flags: persist -> ok, value = ticket id | not_found
  unlink,      ///< -> ok | not_found
  list,        ///< -> ok with entries, repeated while more
  collect,     ///< size = min age in ms, name = program ("": any) -> ok, value = reclaimed count
};

enum class status : std::uint32_t { ok = 0, not_found, exists, bad_request };

inline constexpr std::uint32_t flag_named = 1;
/// Kept whatever its program does, until unlink, its attach (a ticket) or ndshm gc.
inline constexpr std::uint32_t flag_persist = 4;

struct request {
  op code = op::hello;
  std::uint32_t flags = 0;
  std::uint64_t size = 0;
  std::string name;
  segment_meta meta;
  std::uint64_t ticket = 0;
};

struct reply {
  status code = status::ok;
  std::uint64_t value = 0;
  std::uint64_t size = 0;
  segment_meta meta;
  std::vector<segment_status> entries;
  bool more = false;
  std::string program;
};

/// A program id: "<founder pid>-<founder start time>-<secret>", the founder being the program's
/// first process (start time in clock ticks since boot, from /proc: it tells the founder from a later
/// process with its pid) and the secret 64 random bits (16 hex digits).
struct program_claim {
  int founder = 0;
  std::uint64_t start_time = 0;
};
[[nodiscard]] std::string format_program(int founder, std::uint64_t start_time, std::uint64_t secret);
/// nullopt unless text is a well-formed program id.
[[nodiscard]] std::optional<program_claim> parse_program(std::string_view text);

[[nodiscard]] std::vector<std::byte> encode(const request &message);
[[nodiscard]] std::vector<std::byte> encode(const reply &message);
/// nullopt for a malformed message.
[[nodiscard]] std::optional<request> decode_request(std::span<const std::byte> bytes);
[[nodiscard]] std::optional<reply> decode_reply(std::span<const std::byte> bytes);

/// Encoded size of one list entry, to split LIST replies.
[[nodiscard]] std::size_t encoded_size(const segment_status &entry);

} // namespace ndshm::detail
