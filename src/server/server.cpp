// Accept loop, model loading, signals and the drain (see server.h).
// Tests: tests/python/test_server_http.py, tests/python/test_server_load.py.
#include "server/server.h"

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <chrono>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include "server/http_session.h"
#include "server/server_context.h"

namespace frt::server {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;

class Server {
 public:
  Server(const ServerOptions& o, const std::string& checkpoint, const flashrt::LoadOptions& load)
      : ctx_(o, checkpoint, load),
        ioc_(o.io_threads),
        strand_(net::make_strand(ioc_)),
        acceptor_(strand_),
        signals_(strand_, SIGINT, SIGTERM),
        timer_(strand_) {}

  int run() {
    listen();
    signals_.async_wait([this](boost::system::error_code ec, int sig) { on_signal(ec, sig); });
    ctx_.queue().start();
    ctx_.queue().submit_control([this] { load(); });
    do_accept();
    std::vector<std::thread> threads;
    for (int i = 1; i < ctx_.options().io_threads; ++i)
      threads.emplace_back([this] { ioc_.run(); });
    ioc_.run();
    for (auto& t : threads) t.join();
    ctx_.queue().close();
    ctx_.queue().join();
    return exit_code_.load();
  }

 private:
  void listen() {
    const ServerOptions& o = ctx_.options();
    boost::system::error_code ec;
    tcp::resolver resolver(ioc_);
    const auto results = resolver.resolve(o.host, std::to_string(o.port), ec);
    if (ec || results.empty())
      throw std::runtime_error("cannot resolve --host '" + o.host + "': " + ec.message());
    const tcp::endpoint ep = *results.begin();
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec)
      throw std::runtime_error("cannot listen on " + o.host + ":" + std::to_string(o.port) + ": " +
                               ec.message() + " (is another server using the port? try --port)");
    const tcp::endpoint bound = acceptor_.local_endpoint();
    std::printf("flashrt serve: listening on %s:%u (HTTP and openpi websocket)\n",
                bound.address().to_string().c_str(), static_cast<unsigned>(bound.port()));
    std::fflush(stdout);
  }

  void do_accept() {
    acceptor_.async_accept(
        net::make_strand(ioc_), [this](boost::system::error_code ec, tcp::socket s) {
          if (ec == net::error::operation_aborted || !acceptor_.is_open()) return;
          if (!ec) {
            s.set_option(tcp::no_delay(true), ec);  // small replies must not wait for Nagle
            start_http_session(std::move(s), ctx_);
          }
          do_accept();  // a failed accept (e.g. EMFILE) drops one connection, not the server
        });
  }

  // Worker thread: the model is only ever touched here.
  void load() {
    try {
      ctx_.host().load_and_warm_up(ctx_.options().warmup_runs);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "flashrt serve: error: %s\n", e.what());
      std::fflush(stderr);
      ctx_.set_state(ServerState::kFailed);
      exit_code_ = 1;
      net::post(strand_, [this] { stop_now(); });
      return;
    }
    const ModelSummary& m = ctx_.host().summary();
    if (ctx_.state() == ServerState::kLoading) ctx_.set_state(ServerState::kReady);
    std::printf(
        "flashrt serve: ready: %s on %s (%s), %d view(s), horizon %d; load %.0f ms, "
        "warm-up %.0f ms\n",
        m.config.c_str(), m.hardware.c_str(), m.device_name.c_str(), m.num_views, m.action_horizon,
        ctx_.host().load_ms(), ctx_.host().warmup_ms());
    std::fflush(stdout);
  }

  void on_signal(boost::system::error_code ec, int sig) {
    if (ec) return;
    if (draining_) {  // second signal: no more waiting
      std::fprintf(stderr, "flashrt serve: signal %d again; stopping now\n", sig);
      exit_code_ = 1;
      return stop_now();
    }
    draining_ = true;
    drain_start_ = now_ms();
    std::printf("flashrt serve: signal %d: draining %lld in-flight request(s)\n", sig,
                static_cast<long long>(ctx_.inflight()));
    std::fflush(stdout);
    if (ctx_.state() != ServerState::kFailed) ctx_.set_state(ServerState::kDraining);
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    ctx_.queue().close();
    signals_.async_wait([this](boost::system::error_code e, int s) { on_signal(e, s); });
    poll_drain();
  }

  void poll_drain() {
    const bool timed_out = now_ms() - drain_start_ > ctx_.options().drain_timeout_s * 1000.0;
    if ((ctx_.queue().idle() && ctx_.inflight() == 0) || timed_out) {
      if (timed_out)
        std::fprintf(stderr, "flashrt serve: drain timeout; %lld reply(ies) not sent\n",
                     static_cast<long long>(ctx_.inflight()));
      ctx_.shutdown_sessions();
      closing_since_ = now_ms();
      return wait_closed();
    }
    timer_.expires_after(std::chrono::milliseconds(10));
    timer_.async_wait([this](boost::system::error_code ec) {
      if (!ec) poll_drain();
    });
  }

  // Connections close on their own after shutdown(); a peer that never answers the websocket
  // close handshake is given 2 s.
  void wait_closed() {
    if (ctx_.websocket_connections() == 0 || now_ms() - closing_since_ > 2000.0) {
      std::printf("flashrt serve: drained; exiting\n");
      std::fflush(stdout);
      return stop_now();
    }
    timer_.expires_after(std::chrono::milliseconds(10));
    timer_.async_wait([this](boost::system::error_code ec) {
      if (!ec) wait_closed();
    });
  }

  void stop_now() {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    signals_.cancel(ignored);
    ctx_.queue().close(/*drop_pending=*/true);
    ioc_.stop();
  }

  ServerContext ctx_;
  net::io_context ioc_;
  net::strand<net::io_context::executor_type> strand_;  // acceptor, signals, drain timer
  tcp::acceptor acceptor_;
  net::signal_set signals_;
  net::steady_timer timer_;
  std::atomic<int> exit_code_{0};
  bool draining_ = false;
  double drain_start_ = 0, closing_since_ = 0;
};

}  // namespace

int run_server(const ServerOptions& options, const std::string& checkpoint,
               const flashrt::LoadOptions& load) {
  Server server(options, checkpoint, load);
  return server.run();
}

}  // namespace frt::server
