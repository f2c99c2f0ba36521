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
/// may move (the data stays). Throws std::bad_alloc when memory is short.
[[nodiscard]] void *memory_resize(int fd, void *address, std::uint64_t old_bytes, std::uint64_t nbytes);
/// Allocates the pages of [offset, offset + nbytes) of fd now (fallocate), without mapping them: then
/// mapping them costs less than faulting them in fresh (1 GiB in 1 MiB steps: 0.68-0.71 s for both vs
/// 0.79-0.80 s, bench/prototypes/fault.cpp). Throws std::bad_alloc when memory is short.
void memory_allocate(int fd, std::uint64_t offset, std::uint64_t nbytes);
/// Size in bytes of a memory descriptor.
[[nodiscard]] std::uint64_t memory_size(int fd);
/// Maps nbytes (rounded up to pages, at least one page) of fd; throws std::system_error.
[[nodiscard]] void *memory_map(int fd, std::uint64_t nbytes, bool writable);
void memory_unmap(void *address, std::uint64_t nbytes) noexcept;
/// Maps every page of a writable mapping into this process now, splitting the work over threads
/// (shared-memory page faults cost about 2 us a page on one thread). Best effort: ignores old kernels.
void memory_populate(void *address, std::uint64_t nbytes, unsigned threads) noexcept;
[[nodiscard]] std::uint64_t page_round(std::uint64_t nbytes) noexcept;
/// Allocates and maps every page touching [begin, begin + nbytes) now, on the calling thread. False
/// when memory is short.
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

/// 64 random bits from the kernel.
[[nodiscard]] std::uint64_t random_u64();

/// Spawns path with args, detached from this process (no zombie, own session); waits until it
/// either listens or exits. Returns its exit status (0: listening or someone else is).
int spawn_daemon(const std::string &path, const std::vector<std::string> &args);

} // namespace ndshm::detail
