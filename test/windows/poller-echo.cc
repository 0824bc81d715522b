// poller-echo.cc - drives the IOCP Poller directly, without the engine or
// Node: a raw byte echo server.  test/windows/poller-echo.mjs runs it under
// Wine and hammers it from Linux clients, so the backend is checked on its
// own before the whole addon is.
//
//   poller-echo.exe <port-file> <connections-to-serve> [recv_buffer_count]
//
// Writes the bound port to <port-file>, serves until that many connections
// have come and gone, checks the backend's bookkeeping, and exits 0, or
// non-zero with a message on stderr.  A connection whose first read is
// exactly "!ABORT!" instead gets 8 MiB it does not read at first, and is
// closed while that send is in flight: close() must cancel the WSASend and
// still report kSent, then kClosed.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "../../native/src/backend.h"

using namespace ww;

namespace {

int fail(const char* what, const std::string& why) {
  std::fprintf(stderr, "poller-echo: %s: %s\n", what, why.c_str());
  return 1;
}

struct Echo {
  Poller* p;
  std::vector<std::unique_ptr<Conn>> conns;
  long accepted = 0, closed = 0, received = 0, sent = 0, errors = 0, aborted = 0, cancelled = 0;

  void flush(Conn* c) {
    if (c->send_inflight || c->queued.len == 0 || c->state != ConnState::kOpen) return;
    c->sending.reset();
    c->sending.swap(c->queued);
    c->send_off = 0;
    c->send_inflight = true;
    p->send(c);
  }
  void maybe_close(Conn* c) {
    if (c->state == ConnState::kOpen && c->recv_ended && !c->send_inflight && c->queued.len == 0) {
      c->state = ConnState::kClosing;
      p->close(c);
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return fail("usage", "poller-echo <port-file> <connections> [buffers]");
  long target = std::atol(argv[2]);
  std::string err;
  Probe pr = probe_backend(BackendId::kIocp);
  if (!pr.available) return fail("probe", pr.reason);
  ListenResult lr;
  if (!net_listen("127.0.0.1", 0, 511, false, &lr, &err)) return fail("listen", err);
  BackendConfig cfg;
  cfg.recv_buffer_bytes = 16 * 1024;
  cfg.recv_buffer_count = argc > 3 ? uint32_t(std::atoi(argv[3])) : 8;
  std::unique_ptr<Poller> poller = create_poller(BackendId::kIocp, cfg, &err);
  if (!poller) return fail("create", err);
  if (!poller->listen(lr.sock, &err)) return fail("poller listen", err);
  FILE* f = std::fopen(argv[1], "w");
  if (!f) return fail("port file", argv[1]);
  std::fprintf(f, "%d\n", lr.port);
  std::fclose(f);

  Echo e;
  e.p = poller.get();
  Completion out[32];
  while (e.closed < target) {
    int n = poller->wait(out, 32, 20000);
    if (n == 0) {
      std::fprintf(stderr, "poller-echo: accepted=%ld closed=%ld aborted-sends=%ld\n", e.accepted, e.closed, e.aborted);
      return fail("wait", "20 s without a completion");
    }
    for (int i = 0; i < n; i++) {
      Completion& c = out[i];
      switch (c.kind) {
        case CompKind::kWake: break;
        case CompKind::kAccepted: {
          std::unique_ptr<Conn> conn(new Conn());
          conn->sock = c.sock;
          conn->state = ConnState::kOpen;
          net_set_nodelay(c.sock);
          char addr[64];
          int port = 0, fam = 0;
          if (!net_peer(c.sock, addr, sizeof addr, &port, &fam)) return fail("net_peer", "failed");
          if (!poller->start_recv(conn.get(), &err)) return fail("start_recv", err);
          e.conns.push_back(std::move(conn));
          e.accepted++;
          break;
        }
        case CompKind::kAcceptError: e.errors++; break;
        case CompKind::kReceived:
          if (c.conn->state == ConnState::kOpen && c.conn->frame_have == 0 && c.res == 7 &&
              std::memcmp(c.data, "!ABORT!", 7) == 0 && !c.conn->send_inflight &&
              c.conn->queued.len == 0) {
            poller->release(c.buf);
            std::vector<uint8_t> big(8u << 20, 0x5a);
            c.conn->sending.reset();
            c.conn->sending.append(big.data(), uint32_t(big.size()));
            c.conn->send_off = 0;
            c.conn->send_inflight = true;
            c.conn->be_aux = 1;  // this harness's own mark (the backend keeps be_ptr)
            poller->send(c.conn);
            c.conn->state = ConnState::kClosing;
            poller->close(c.conn);
            break;
          }
          c.conn->frame_have += uint32_t(c.res);  // (the engine's field; here: bytes so far)
          e.received += c.res;
          if (c.conn->state == ConnState::kOpen) c.conn->queued.append(c.data, uint32_t(c.res));
          poller->release(c.buf);
          e.flush(c.conn);
          break;
        case CompKind::kRecvEnd:
          c.conn->recv_ended = true;
          if (c.res < 0) {
            e.errors++;
            c.conn->queued.reset();
          }
          e.maybe_close(c.conn);
          break;
        case CompKind::kSent:
          c.conn->send_inflight = false;
          if (c.conn->be_aux == 1) {
            if (c.conn->state != ConnState::kClosing) return fail("aborted send", "kSent after kClosed");
            e.aborted++;
            if (c.res < 0) e.cancelled++;  // the WSASend was still in the kernel
            break;
          }
          if (c.res < 0) {
            e.errors++;
            c.conn->queued.reset();
            c.conn->recv_ended = true;
          } else {
            e.sent += c.res;
          }
          e.flush(c.conn);
          e.maybe_close(c.conn);
          break;
        case CompKind::kClosed:
          if (c.conn->be_ptr) return fail("kClosed", "be_ptr still set");
          if (c.conn->send_inflight) return fail("kClosed", "before the send's kSent");
          c.conn->state = ConnState::kFree;
          c.conn->sending.reset();
          c.conn->queued.reset();
          e.closed++;
          break;
      }
    }
  }
  poller->stop_listen();
  poller->stop_listen();  // twice: a no-op
  net_close(lr.sock);
  // Bad input is ignored, never a crash: buffers that are not lent, a null
  // connection, a connection that was never started.
  poller->release(0);
  poller->release(0xffff);
  poller->send(nullptr);
  poller->close(nullptr);
  poller->pause_recv(nullptr);
  poller->resume_recv(nullptr);
  {
    Conn idle;
    idle.sock = kBadSock;
    poller->close(&idle);  // no socket, nothing outstanding: kClosed at once
    int k = poller->wait(out, 32, 1000);
    if (k != 1 || out[0].kind != CompKind::kClosed || out[0].conn != &idle)
      return fail("close of a never-started connection", "no kClosed");
  }
  // Wake from another thread and expect exactly the coalesced kWake.
  poller->wake();
  poller->wake();
  int n = poller->wait(out, 32, 5000);
  if (n < 1 || out[0].kind != CompKind::kWake) return fail("wake", "no kWake");
  poller.reset();
  std::printf("accepted=%ld closed=%ld received=%ld sent=%ld errors=%ld aborted-sends=%ld (cancelled %ld)\n",
              e.accepted, e.closed, e.received, e.sent, e.errors, e.aborted, e.cancelled);
  if (e.aborted != 2) return fail("aborted sends", "expected 2 kSent for the closed-while-sending connections");
  return e.received == e.sent ? 0 : 2;
}
