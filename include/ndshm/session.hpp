// Segments and their broker: create, attach, hand over, list and collect shared segments of a session.
//
// A session is a set of processes of one user that share segments through one broker process
// (started on first use, exits with its last client). The kernel reference-counts the memory: a
// segment lives while a process maps it or the broker holds its descriptor for a handle in flight
// or a name. Names and handles in flight belong to the program that made them (program_id()): they
// go when its last process has disconnected and the broker's linger has passed, unless persistent.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ndshm/mapping.hpp"

namespace ndshm {

/// What describes a segment in listings: free text set by its creator.
struct segment_meta {
  std::string dtype; ///< e.g. "<f8" or "[('chr', '|S10'), ('pos', '<i4')]"
  std::string shape; ///< e.g. "(1000, 5)"
};

/// What create_segment makes.
struct segment_options {
  std::uint64_t size = 0;  ///< bytes; 0 is allowed
  std::string session;     ///< empty: default_session()
  std::string name;        ///< empty: a random name; otherwise a named segment
  bool named = false;      ///< kept by the broker until unlink_segment() or the end of its program
  segment_meta meta;
  /// Reserve every page and map it into the creator now, on all cores, so that writing costs no page
  /// faults. false: pages are neither reserved nor mapped, and the creator must prefault every page in
  /// its own threads before sharing the segment (as the loader does, through parse_rows).
  bool populate = true;
  /// A named segment kept after its program has ended, until unlink_segment() or collect_orphans().
  bool persist = false;
};

/// One live segment as its broker sees it.
struct segment_status {
  std::string name;
  std::uint64_t size = 0;
  segment_meta meta;
  std::uint32_t tickets = 0;          ///< handles handed out and not yet attached
  bool named = false;
  bool persistent = false;            ///< its name or a ticket outlives its program (track=False, persist=True)
  std::string program;                ///< the program that created it
  double age_seconds = 0;
  std::vector<std::int32_t> holders;  ///< pids of processes that map it
};

/// $NDSHM_SESSION, or "default".
[[nodiscard]] std::string default_session();

/// Path of the ndshm-broker executable (overridden by $NDSHM_BROKER).
void set_broker_path(std::string path);

/// This process's program: the id it gives every broker. Founded on first use (this process is the
/// founder); a fork()ed child keeps its parent's. Brokers check it (see docs/design.md).
[[nodiscard]] std::string program_id();
/// Joins the program id (from a parent that is a multiprocessing parent); an invalid id is ignored
/// (returns false) and the process keeps its own. Call before the first connection.
bool set_program_id(const std::string &id);

/// Creates, sizes (pages reserved up front: std::bad_alloc when memory is short) and maps a segment.
[[nodiscard]] std::shared_ptr<mapping> create_segment(const segment_options &options);

/// A segment filled before its size is known (text parsed in one pass). It grows as data arrives (pages
/// are allocated as far as reserve() is asked, no further) and stays private to this process, unknown to any
/// broker (if the process dies, the kernel frees it), until finish() seals it at its final size and
/// registers it as create_segment does. Dropped unfinished, it is simply freed.
class growing_segment {
public:
  explicit growing_segment(std::string session = {});
  growing_segment(const growing_segment &) = delete;
  growing_segment &operator=(const growing_segment &) = delete;
  ~growing_segment();

  /// Room for at least nbytes (capacity grows geometrically; pages are allocated as they are first
  /// mapped or written); returns the first byte, which may move from call to call (the
  /// data stays). Throws std::bad_alloc when memory is short.
  std::byte *reserve(std::uint64_t nbytes);
  /// Seals the first options.size bytes (at most what was reserved) and registers them under a new
  /// name (options.name, .named and .populate are ignored). The segment is then like any other.
  [[nodiscard]] std::shared_ptr<mapping> finish(const segment_options &options);
  /// The first nbytes as this process's private memory: no broker knows it, no handle reaches it
  /// (the mapping's name is empty); it goes with the mapping.
  [[nodiscard]] std::shared_ptr<mapping> finish_private(std::uint64_t nbytes);

private:
  std::shared_ptr<mapping> take(std::uint64_t nbytes);

  std::string m_session;
  int m_fd = -1;
  std::byte *m_data = nullptr;
  std::uint64_t m_capacity = 0;
};

/// Maps an existing segment. ticket: this attach redeems that ticket from issue_ticket() (0: none).
/// Throws segment_not_found when the broker does not know the name.
[[nodiscard]] std::shared_ptr<mapping> attach_segment(std::string_view session, std::string_view name,
                                                      access mode, std::uint64_t ticket = 0);

/// Keeps the segment alive for one future attach_segment(..., ticket), even if every process that
/// maps it exits first, as long as this program runs (plus the broker's linger); with persist, until
/// that attach or collect_orphans() whatever the program does. Call before a handle leaves the
/// process; returns the ticket's id (never 0).
[[nodiscard]] std::uint64_t issue_ticket(const mapping &segment, bool persist = false);

/// Forgets a named segment: no new attach finds it; mappings stay valid. Throws segment_not_found.
void unlink_segment(std::string_view session, std::string_view name);

/// Live segments of a session (empty if its broker is not running; never starts one).
[[nodiscard]] std::vector<segment_status> list_segments(std::string_view session);

/// Drops broker references to segments that no process maps and that are older than min_age seconds
/// (program not empty: only those that program created). Returns how many segments were reclaimed.
/// Never starts a broker.
std::size_t collect_orphans(std::string_view session, double min_age_seconds, std::string_view program = {});

/// Sessions of this user whose broker is running.
[[nodiscard]] std::vector<std::string> list_sessions();

/// Pid of the session's broker, or 0 if none runs.
[[nodiscard]] int broker_pid(std::string_view session);

/// Closes this process's connection to the session's broker (its holds are dropped; mappings stay valid).
void disconnect(std::string_view session);

} // namespace ndshm
