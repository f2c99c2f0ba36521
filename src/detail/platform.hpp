// The operating-system calls ndshm needs, behind one small interface (Linux now; macOS can follow).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <sys/types.h>
#include <vector>

namespace ndshm::detail {

/// An owned file descriptor.
class unique_fd {
public:
  unique_fd() noexcept = default;
  explicit unique_fd(int fd) noexcept : m_fd(fd) {}
  unique_fd(unique_fd &&other) noexcept : m_fd(other.release()) {}
  unique_fd &operator=(unique_fd &&other) noexcept {
    reset(other.release());
    return *this;
  }
  unique_fd(const unique_fd &) = delete;
  unique_fd &operator=(const unique_fd &) = delete;
  ~unique_fd() { reset(); }

  [[nodiscard]] int get() const noexcept { return m_fd; }
  [[nodiscard]] explicit operator bool() const noexcept { return m_fd >= 0; }
  int release() noexcept {
    int fd = m_fd;
    m_fd = -1;
    return fd;
  }
  void reset(int fd = -1) noexcept;

private:
  int m_fd = -1;
};

/// The reach of one huge page (a PMD) with 4 KiB pages, on x86-64 and arm64. Mappings of at least
/// this size start at a multiple of it, and memory_prefault backs each whole one with one huge page:
/// then a page of it costs one fault, not 512 (see huge_page_pacer for what one costs).
inline constexpr std::uint64_t huge_page_size = std::uint64_t{2} << 20;
/// n rounded up to a multiple of huge_page_size.
constexpr std::uint64_t huge_round(std::uint64_t n) noexcept {
  return (n + huge_page_size - 1) / huge_page_size * huge_page_size;
}

/// Whether a thread's next whole 2 MiB gets a huge page, from what its last one cost (thread CPU
/// time). A huge page costs 0.25-0.4 ms where memory was freed just before, but 3-4.4 ms where a VM's
/// balloon has taken the free 2 MiB block back from the guest (page_reporting), against about 2.5 ms
/// for 512 small pages, which come from smaller free blocks that are never taken back
/// (bench/prototypes/collapse.cpp). So after a slow one, the next ranges take small pages; then a huge
/// page is tried again.
class huge_page_pacer {
public:
  static constexpr double slow_seconds = 0.001;
  static constexpr unsigned small_after_slow = 16;

  [[nodiscard]] bool next_huge() noexcept {
    if (m_small_left == 0)
      return true;
    --m_small_left;
    return false;
  }
  void took(double seconds) noexcept {
    if (seconds > slow_seconds)
      m_small_left = small_after_slow;
  }

private:
  unsigned m_small_left = 0;
};

/// Anonymous memory of nbytes, named for /proc listings, mode 0600, size sealed. With reserve, every
/// page is allocated now; without, the creator must prefault every page (memory_prefault) before
/// anyone else maps it. Throws std::bad_alloc when memory is short, std::system_error otherwise.
[[nodiscard]] unique_fd memory_create(const std::string &label, std::uint64_t nbytes, bool reserve = true);
/// Seals fd's size (memory_create does so): no process can shrink it under another's mapping.
void memory_seal(int fd);
/// Anonymous memory that grows (memory_resize) until memory_seal fixes its size: for data whose size
/// is known only once written. Mode 0600, nothing allocated.
[[nodiscard]] unique_fd memory_create_growable(const std::string &label);
/// Resizes unsealed fd to nbytes (pages allocated only when touched) and its writable mapping at
/// address (old_bytes long; nullptr: not mapped yet) to match. Returns the mapping's address, which
/// may move (the data stays; a move keeps it at a huge page boundary). Throws std::bad_alloc when
/// memory is short.
[[nodiscard]] void *memory_resize(int fd, void *address, std::uint64_t old_bytes, std::uint64_t nbytes);
/// Allocates the pages of [offset, offset + nbytes) of fd now (fallocate), without mapping them: a short
/// machine fails here, not later. They are small pages. Throws std::bad_alloc when memory is short.
void memory_allocate(int fd, std::uint64_t offset, std::uint64_t nbytes);
/// Size in bytes of a memory descriptor.
[[nodiscard]] std::uint64_t memory_size(int fd);
/// Maps nbytes (rounded up to pages, at least one page) of fd, from a huge page boundary on when
/// nbytes reaches huge_page_size; throws std::system_error.
[[nodiscard]] void *memory_map(int fd, std::uint64_t nbytes, bool writable);
void memory_unmap(void *address, std::uint64_t nbytes) noexcept;
/// Unmaps the whole pages inside [begin, begin + nbytes) of a private read-only file mapping, which
/// stays in place: a page read again maps again from the page cache.
void file_pages_release(const void *begin, std::uint64_t nbytes) noexcept;
/// Allocates and maps every page of a writable mapping now (memory_prefault), splitting the work over
/// threads in whole huge pages. False when memory is short.
[[nodiscard]] bool memory_populate(void *address, std::uint64_t nbytes, unsigned threads) noexcept;
[[nodiscard]] std::uint64_t page_round(std::uint64_t nbytes) noexcept;
/// Allocates and maps every page touching [begin, begin + nbytes) now, on the calling thread: a huge
/// page for each whole huge_page_size range inside it (where the kernel can: Linux 6.1, THP not set
/// to "deny"; cheapest where no page exists yet; paced by this thread's huge_page_pacer, unless
/// NDSHM_HUGE_PAGES is 1; none if it is 0), small pages elsewhere. False when memory is short.
[[nodiscard]] bool memory_prefault(void *begin, std::uint64_t nbytes) noexcept;

/// Listening socket at an abstract address; an empty fd if the address is taken.
[[nodiscard]] unique_fd socket_listen(const std::string &address);
/// Connected socket, or an empty fd if nobody listens there.
[[nodiscard]] unique_fd socket_connect(const std::string &address);
[[nodiscard]] unique_fd socket_accept(int listener);

struct peer_credentials {
  pid_t pid = 0;
  uid_t uid = 0;
};
[[nodiscard]] peer_credentials socket_peer(int sock);

/// Sends one message, with fd attached if >= 0. False if the peer is gone.
[[nodiscard]] bool socket_send(int sock, std::span<const std::byte> message, int fd = -1);
/// Receives one message (and a descriptor, if one came). nullopt when the peer is gone.
[[nodiscard]] std::optional<std::size_t> socket_recv(int sock, std::span<std::byte> buffer,
                                                     unique_fd *fd);

/// Abstract socket addresses of this user's running brokers (from /proc/net/unix).
[[nodiscard]] std::vector<std::string> listening_addresses(const std::string &prefix);

/// What /proc says of a live process: its parent and when it started (clock ticks since boot), which
/// tells a process from a later one that reuses its pid.
struct process_info {
  pid_t parent = 0;
  std::uint64_t start_time = 0;
};
/// nullopt when pid does not exist (or is a zombie: it no longer counts as running).
[[nodiscard]] std::optional<process_info> process_stat(pid_t pid);

/// 64 random bits from the kernel.
[[nodiscard]] std::uint64_t random_u64();

/// Spawns path with args, detached from this process (no zombie, own session); waits until it
/// either listens or exits. Returns its exit status (0: listening or someone else is).
int spawn_daemon(const std::string &path, const std::vector<std::string> &args);

} // namespace ndshm::detail
