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
#include "detail/protocol.hpp"
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
  auto ticket = ndshm::issue_ticket(*segment);
  segment.reset(); // as if the producer exited
  auto entries = ndshm::list_segments(m_session);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].tickets, 1u);
  EXPECT_TRUE(entries[0].holders.empty());
  auto consumer = ndshm::attach_segment(m_session, name, ndshm::access::read_only, ticket);
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
  (void)ndshm::issue_ticket(*segment);
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
        auto ticket = ndshm::issue_ticket(*segment);
        auto other = ndshm::attach_segment(m_session, segment->name(), ndshm::access::read_only, ticket);
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
    auto ticket = ndshm::issue_ticket(*segment);
    auto entries = ndshm::list_segments(m_session);
    bool ok = entries.size() == 1 && entries[0].holders.size() == 2 && ticket != 0;
    segment->data()[8] = static_cast<std::byte>(ticket); // tells the parent which ticket to redeem
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
  auto entry_ticket = std::to_integer<std::uint64_t>(segment->data()[8]);
  auto redeemed = ndshm::attach_segment(m_session, segment->name(), ndshm::access::read_write, entry_ticket);
  EXPECT_EQ(ndshm::list_segments(m_session).at(0).tickets, 0u);
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
    auto sock = ndshm::detail::socket_connect("ndshm" + std::to_string(ndshm::detail::protocol_version) + ".0." + name);
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
    auto listener = ndshm::detail::socket_listen("ndshm" + std::to_string(ndshm::detail::protocol_version) + ".0." + name); // pretends to be root's broker
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
  auto sock = ndshm::detail::socket_connect(ndshm::detail::socket_address(name));
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

// Programs: a program's names and handles in flight go once its last process has gone (kill -9
// included) and the linger has passed, while another program keeps the broker running.
namespace {

/// Makes this (forked) process the founder of a program of its own, as an exec'd program would be.
void found_own_program() {
  auto self = ndshm::detail::process_stat(::getpid());
  ASSERT_TRUE(self);
  ASSERT_TRUE(ndshm::set_program_id(
      ndshm::detail::format_program(::getpid(), self->start_time, ndshm::detail::random_u64())));
}

bool listed(const std::string &session, const std::string &name) {
  for (const auto &entry : ndshm::list_segments(session))
    if (entry.name == name)
      return true;
  return false;
}

struct killed_program {
  std::uint64_t pending = 0, handed = 0; // tickets: the program's own, and a persistent one
};

} // namespace

TEST(program, a_killed_programs_names_and_handles_go_while_another_program_runs) {
  std::string name = session_name();
  ::setenv("NDSHM_BROKER_LINGER", "1", 1); // read by the broker this test starts
  auto resident = ndshm::create_segment({64, name}); // this program keeps the broker running
  // A process of this program that exits leaves its name: the program lives on here.
  pid_t ours = ::fork();
  if (ours == 0) {
    (void)ndshm::create_segment({16, name, "ours", true});
    ::_exit(0);
  }
  ASSERT_EQ(::waitpid(ours, nullptr, 0), ours);

  int report[2];
  ASSERT_EQ(::pipe(report), 0);
  pid_t killed = ::fork();
  if (killed == 0) {
    found_own_program();
    std::vector<std::shared_ptr<ndshm::mapping>> keep;
    for (const char *segment_name : {"left", "mapped", "kept"}) {
      ndshm::segment_options options{64, name, segment_name, std::string(segment_name) != "mapped"};
      options.persist = std::string(segment_name) == "kept";
      keep.push_back(ndshm::create_segment(options));
      keep.back()->data()[0] = std::byte{42};
    }
    auto pending = ndshm::create_segment({64, name, "pending"});
    auto handed = ndshm::create_segment({64, name, "handed"});
    handed->data()[0] = std::byte{43};
    killed_program out{ndshm::issue_ticket(*pending), ndshm::issue_ticket(*handed, /*persist=*/true)};
    char program[64] = {};
    ndshm::program_id().copy(program, sizeof program - 1);
    (void)::write(report[1], &out, sizeof out);
    (void)::write(report[1], program, sizeof program);
    ::pause(); // its mappings of pending and handed end with it: only the tickets keep them
  }
  ::close(report[1]);
  killed_program in;
  char program[64] = {};
  ASSERT_EQ(::read(report[0], &in, sizeof in), static_cast<ssize_t>(sizeof in));
  ASSERT_EQ(::read(report[0], program, sizeof program), static_cast<ssize_t>(sizeof program));
  ::close(report[0]);
  ASSERT_NE(std::string(program), ndshm::program_id());
  auto mapped = ndshm::attach_segment(name, "mapped", ndshm::access::read_only);
  ASSERT_EQ(::kill(killed, SIGKILL), 0);
  ASSERT_EQ(::waitpid(killed, nullptr, 0), killed);

  // Within the linger, a consumer can still attach what it left, by name or by handle.
  auto left = ndshm::attach_segment(name, "left", ndshm::access::read_only);
  EXPECT_TRUE(listed(name, "pending"));
  // Then its names and handles in flight go (the broker reports it in its listing; no sleep).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while ((listed(name, "left") || listed(name, "pending")) && std::chrono::steady_clock::now() < deadline) {
  }
  EXPECT_FALSE(listed(name, "left")) << "the killed program's name outlived it";
  EXPECT_FALSE(listed(name, "pending")) << "the killed program's handle in flight outlived it";
  EXPECT_THROW((void)ndshm::attach_segment(name, "left", ndshm::access::read_only), ndshm::segment_not_found);
  EXPECT_THROW((void)ndshm::attach_segment(name, "pending", ndshm::access::read_only, in.pending),
               ndshm::segment_not_found);
  // What this program maps stays valid and listed; this program's own name stays.
  EXPECT_EQ(left->data()[0], std::byte{42});
  EXPECT_EQ(mapped->data()[0], std::byte{42});
  EXPECT_TRUE(listed(name, "mapped"));
  EXPECT_TRUE(listed(name, "ours"));
  // Persistent ones stay, with their creating program, until unlink, their attach or gc.
  auto entries = ndshm::list_segments(name);
  for (const auto &entry : entries)
    if (entry.name == "kept" || entry.name == "handed") {
      EXPECT_TRUE(entry.persistent) << entry.name;
      EXPECT_EQ(entry.program, program) << entry.name;
    }
  auto kept = ndshm::attach_segment(name, "kept", ndshm::access::read_only);
  EXPECT_EQ(kept->data()[0], std::byte{42});
  auto handed = ndshm::attach_segment(name, "handed", ndshm::access::read_only, in.handed);
  EXPECT_EQ(handed->data()[0], std::byte{43});
  ndshm::unlink_segment(name, "kept");
  ndshm::unlink_segment(name, "ours");
  kept.reset();
  handed.reset();
  left.reset();
  mapped.reset();
  resident.reset();
  EXPECT_TRUE(ndshm::list_segments(name).empty());
  ndshm::disconnect(name);
}

TEST(program, persistent_segments_keep_the_broker_until_collected) {
  std::string name = session_name();
  ::setenv("NDSHM_BROKER_LINGER", "0.2", 1);
  pid_t killed = ::fork();
  if (killed == 0) {
    found_own_program();
    ndshm::segment_options options{64, name, "kept", true};
    options.persist = true;
    auto kept = ndshm::create_segment(options);
    (void)ndshm::issue_ticket(*ndshm::create_segment({64, name}), /*persist=*/true);
    ::kill(::getpid(), SIGKILL);
  }
  ASSERT_EQ(::waitpid(killed, nullptr, 0), killed);
  // No client is left, yet the broker keeps both (a hand-over to a program started later).
  auto entries = ndshm::list_segments(name);
  ASSERT_EQ(entries.size(), 2u);
  auto program = entries[0].program;
  EXPECT_EQ(ndshm::collect_orphans(name, 0, ndshm::program_id()), 0u) << "another program's";
  EXPECT_EQ(ndshm::collect_orphans(name, 0, program), 2u);
  EXPECT_TRUE(ndshm::list_segments(name).empty());
  ndshm::disconnect(name);
}

TEST(program, the_broker_admits_a_claimed_program_only_from_its_founders_descendants) {
  std::string name = session_name();
  auto segment = ndshm::create_segment({64, name}); // this program
  pid_t sibling = ::fork();
  if (sibling == 0) {
    ::pause();
    ::_exit(0);
  }
  pid_t child = ::fork();
  if (child == 0) {
    // A claim naming the sibling (alive, right start time) is refused: the child does not descend from it.
    auto other = ndshm::detail::process_stat(sibling);
    if (!other)
      ::_exit(2);
    std::string claim = ndshm::detail::format_program(sibling, other->start_time, 1);
    ndshm::set_program_id(claim);
    (void)ndshm::list_segments(name);
    if (ndshm::program_id() == claim)
      ::_exit(3);
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  ::kill(sibling, SIGKILL);
  ::waitpid(sibling, nullptr, 0);
  // A fork()ed child is admitted in its parent's program (it descends from the founder).
  child = ::fork();
  if (child == 0) {
    auto parents = ndshm::program_id();
    auto entries = ndshm::list_segments(name);
    ::_exit(entries.size() == 1 && entries[0].program == parents && ndshm::program_id() == parents ? 0 : 1);
  }
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  segment.reset();
  ndshm::disconnect(name);
}
