// Lifecycle through the broker: tickets, holders, freeing, named segments, listing, threads, fork.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <thread>

#include <csignal>

#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "detail/platform.hpp"
#include "ndshm/errors.hpp"
#include "ndshm/session.hpp"

namespace {
std::string session_name() {
  return "gtest-" + std::to_string(::getpid()) + "-" +
         ::testing::UnitTest::GetInstance()->current_test_info()->name();
}

class session : public ::testing::Test {
protected:
  void TearDown() override {
    EXPECT_TRUE(ndshm::list_segments(m_session).empty()) << "segments left in " << m_session;
    ndshm::disconnect(m_session);
  }
  std::string m_session = session_name();
};
} // namespace

TEST_F(session, a_segment_is_freed_when_its_last_mapping_goes) {
  auto segment = ndshm::create_segment({64, m_session});
  std::string name = segment->name();
  ASSERT_EQ(ndshm::list_segments(m_session).size(), 1u);
  auto second = ndshm::attach_segment(m_session, name, ndshm::access::read_write);
  EXPECT_EQ(second, segment) << "one mapping per segment and access mode in a process";
  segment.reset();
  EXPECT_EQ(ndshm::list_segments(m_session).size(), 1u);
  second.reset();
  EXPECT_TRUE(ndshm::list_segments(m_session).empty());
  EXPECT_THROW((void)ndshm::attach_segment(m_session, name, ndshm::access::read_write),
               ndshm::segment_not_found);
}

TEST_F(session, a_ticket_keeps_a_segment_alive_for_one_attach) {
  auto segment = ndshm::create_segment({64, m_session});
  std::string name = segment->name();
  segment->data()[0] = std::byte{42};
  ndshm::issue_ticket(*segment);
  segment.reset(); // as if the producer exited
  auto entries = ndshm::list_segments(m_session);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].tickets, 1u);
  EXPECT_TRUE(entries[0].holders.empty());
  auto consumer = ndshm::attach_segment(m_session, name, ndshm::access::read_only, /*redeem=*/true);
  EXPECT_EQ(consumer->data()[0], std::byte{42});
  consumer.reset();
  EXPECT_TRUE(ndshm::list_segments(m_session).empty());
}

TEST_F(session, named_segments_live_until_unlinked) {
  {
    auto segment = ndshm::create_segment({10, m_session, "block", true});
    EXPECT_THROW((void)ndshm::create_segment({10, m_session, "block", true}), ndshm::segment_exists);
  }
  auto again = ndshm::attach_segment(m_session, "block", ndshm::access::read_write);
  EXPECT_EQ(again->size(), 10u);
  ndshm::unlink_segment(m_session, "block");
  EXPECT_THROW(ndshm::unlink_segment(m_session, "block"), ndshm::segment_not_found);
  EXPECT_EQ(again->size(), 10u); // mappings stay valid after unlink
}

TEST_F(session, listing_reports_meta_holders_and_collect_reclaims_orphans) {
  auto segment = ndshm::create_segment({80, m_session, "", false, {"<f8", "(10,)"}});
  auto entries = ndshm::list_segments(m_session);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].meta.dtype, "<f8");
  EXPECT_EQ(entries[0].meta.shape, "(10,)");
  EXPECT_EQ(entries[0].holders, std::vector<std::int32_t>{::getpid()});
  EXPECT_EQ(ndshm::collect_orphans(m_session, 0), 0u); // mapped: not an orphan
  ndshm::issue_ticket(*segment);
  segment.reset();
  EXPECT_EQ(ndshm::collect_orphans(m_session, 3600), 0u); // too young
  EXPECT_EQ(ndshm::collect_orphans(m_session, 0), 1u);
}

TEST_F(session, threads_create_share_and_free_concurrently) {
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 100; ++i) {
        auto segment = ndshm::create_segment({static_cast<std::uint64_t>(100 + i), m_session});
        segment->data()[0] = std::byte(t);
        ndshm::issue_ticket(*segment);
        auto other = ndshm::attach_segment(m_session, segment->name(), ndshm::access::read_only, true);
        if (other->data()[0] != std::byte(t))
          ++failures;
      }
    });
  for (auto &thread : threads)
    thread.join();
  EXPECT_EQ(failures.load(), 0);
}

// A segment filled before its size is known: private while it grows (no broker lists it, dropping it
// leaves nothing), then sealed at its final size and registered like any other.
TEST_F(session, a_growing_segment_keeps_its_data_and_is_sealed_when_finished) {
  {
    ndshm::growing_segment dropped(m_session);
    std::memset(dropped.reserve(1 << 20), 7, 1 << 20);
    EXPECT_TRUE(ndshm::list_segments(m_session).empty());
  }
  ndshm::growing_segment growing(m_session);
  std::uint64_t written = 0;
  for (std::uint64_t size : {1u << 10, 70u << 20, 200u << 20}) { // past the first capacity: the data moves
    std::byte *data = growing.reserve(size);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(data) % ndshm::detail::huge_page_size, 0u); // where it moves too
    for (std::uint64_t k = (written + 4095) / 4096 * 4096; k < size; k += 4096) // a byte per page
      data[k] = static_cast<std::byte>(k / 4096 % 251);
    for (std::uint64_t k = 0; k < written; k += 4096)
      ASSERT_EQ(data[k], static_cast<std::byte>(k / 4096 % 251)) << "byte " << k << " lost when it grew";
    written = size;
  }
  EXPECT_TRUE(ndshm::list_segments(m_session).empty());
  ndshm::segment_options options;
  options.size = (150u << 20) + 3; // less than reserved: the rest is given back
  options.meta = {"|u1", "(157286403,)"};
  auto segment = growing.finish(options);
  EXPECT_EQ(segment->size(), options.size);
  auto listed = ndshm::list_segments(m_session);
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].size, options.size);
  EXPECT_EQ(listed[0].meta.shape, "(157286403,)");
  auto other = ndshm::attach_segment(m_session, segment->name(), ndshm::access::read_only);
  EXPECT_EQ(other->size(), options.size);
  for (std::uint64_t k = 0; k < options.size; k += 4096)
    ASSERT_EQ(other->data()[k], static_cast<std::byte>(k / 4096 % 251));
}

TEST_F(session, a_forked_child_holds_what_it_inherited) {
  auto segment = ndshm::create_segment({64, m_session});
  pid_t child = ::fork();
  if (child == 0) {
    // The parent's connection is not shared: the child gets its own and declares its mapping.
    ndshm::issue_ticket(*segment);
    auto entries = ndshm::list_segments(m_session);
    bool ok = entries.size() == 1 && entries[0].holders.size() == 2;
    segment->data()[0] = std::byte{7};
    ::_exit(ok ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_EQ(segment->data()[0], std::byte{7});
  auto entries = ndshm::list_segments(m_session);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].holders, std::vector<std::int32_t>{::getpid()});
  EXPECT_EQ(entries[0].tickets, 1u);
  auto redeemed = ndshm::attach_segment(m_session, segment->name(), ndshm::access::read_write, true);
}

TEST(broker, exits_when_its_last_client_leaves) {
  std::string name = session_name();
  auto segment = ndshm::create_segment({64, name});
  int pid = ndshm::broker_pid(name);
  ASSERT_GT(pid, 0);
  segment.reset();
  ndshm::disconnect(name);
  // The broker exits at once with nothing to keep; wait for it through a pidfd.
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd >= 0) {
    pollfd p{fd, POLLIN, 0};
    EXPECT_EQ(::poll(&p, 1, 10'000), 1);
    ::close(fd);
  }
  EXPECT_EQ(ndshm::broker_pid(name), 0);
}

TEST(broker, refuses_clients_of_another_user) {
  if (::getuid() != 0)
    GTEST_SKIP() << "needs root to run a process as another user";
  std::string name = session_name();
  auto segment = ndshm::create_segment({64, name});
  pid_t child = ::fork();
  if (child == 0) {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0)
      ::_exit(3);
    auto sock = ndshm::detail::socket_connect("ndshm.0." + name);
    if (!sock)
      ::_exit(4);
    std::byte buffer[64];
    bool hung_up = !ndshm::detail::socket_recv(sock.get(), buffer, nullptr);
    ::_exit(hung_up ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  segment.reset();
  ndshm::disconnect(name);
}

TEST(broker, clients_refuse_a_socket_squatted_by_another_user) {
  if (::getuid() != 0)
    GTEST_SKIP() << "needs root to run a process as another user";
  std::string name = session_name();
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t child = ::fork();
  if (child == 0) {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0)
      ::_exit(3);
    auto listener = ndshm::detail::socket_listen("ndshm.0." + name); // pretends to be root's broker
    char byte = listener ? 1 : 0;
    (void)::write(ready[1], &byte, 1);
    ::pause();
    ::_exit(0);
  }
  char byte = 0;
  ASSERT_EQ(::read(ready[0], &byte, 1), 1);
  ASSERT_EQ(byte, 1);
  try {
    (void)ndshm::create_segment({64, name});
    ADD_FAILURE() << "connected to another user's socket";
  } catch (const ndshm::broker_error &e) {
    EXPECT_NE(std::string(e.what()).find("not to this user"), std::string::npos) << e.what();
  }
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  ::close(ready[0]);
  ::close(ready[1]);
}

TEST(broker, survives_a_client_sending_garbage) {
  std::string name = session_name();
  auto segment = ndshm::create_segment({64, name});
  int pid = ndshm::broker_pid(name);
  auto sock = ndshm::detail::socket_connect("ndshm." + std::to_string(::getuid()) + "." + name);
  ASSERT_TRUE(sock);
  std::vector<std::byte> huge(100 * 1024, std::byte{0x5a}); // larger than any message: truncated
  ASSERT_TRUE(ndshm::detail::socket_send(sock.get(), huge));
  std::byte small[3] = {std::byte{1}, std::byte{2}, std::byte{3}};
  (void)ndshm::detail::socket_send(sock.get(), small);
  std::byte buffer[64];
  EXPECT_FALSE(ndshm::detail::socket_recv(sock.get(), buffer, nullptr)) << "the broker hangs up on it";
  EXPECT_EQ(ndshm::broker_pid(name), pid);
  EXPECT_EQ(ndshm::list_segments(name).size(), 1u); // and goes on serving everyone else
  segment.reset();
  ndshm::disconnect(name);
}
