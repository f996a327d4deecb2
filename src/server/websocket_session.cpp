// The openpi websocket session (see websocket_session.h).
// Tests: tests/python/test_server_openpi.py, tests/python/test_server_bad_inputs.py.
#include "server/websocket_session.h"

#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <deque>
#include <map>
#include <memory>

#include "server/input_checks.h"
#include "server/openpi_codec.h"

namespace frt::server {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;

const char* reason(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 413:
      return "Payload Too Large";
    case 503:
      return "Service Unavailable";
    default:
      return "Internal Server Error";
  }
}

constexpr size_t kMaxPendingReplies = 32;  // stop reading while this many are unsent

class WebsocketSession : public Closeable, public std::enable_shared_from_this<WebsocketSession> {
 public:
  WebsocketSession(tcp::socket&& socket, ServerContext& ctx) : ws_(std::move(socket)), ctx_(ctx) {}
  ~WebsocketSession() override {
    if (counted_) --ctx_.websocket_connections();
  }

  void run(http::request<http::string_body> req) {
    auth_ = std::string(req[http::field::authorization]);
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    ws_.set_option(websocket::stream_base::decorator([](websocket::response_type& res) {
      res.set(http::field::server, "flashrt/" + flashrt::version());
    }));
    ws_.read_message_max(0);  // our own limit, enforced in on_read so the stream stays usable
    ws_.auto_fragment(false);
    ws_.async_accept(req,
                     beast::bind_front_handler(&WebsocketSession::on_accept, shared_from_this()));
  }

  void shutdown() override {
    net::post(ws_.get_executor(), [self = shared_from_this()] {
      self->closing_ = true;
      self->maybe_close();
    });
  }

 private:
  struct Out {
    std::shared_ptr<std::string> bytes;
    bool binary = true;
    int status = 0;  // 0: not a reply (metadata, control ack): not counted in the metrics
    double t0 = 0;
    std::shared_ptr<InflightToken> token = nullptr;
  };

  void on_accept(beast::error_code ec) {
    if (ec) return;  // handshake failed; the session ends
    ++ctx_.websocket_connections();
    counted_ = true;
    ctx_.track(weak_from_this());
    enqueue_now(Out{std::make_shared<std::string>(metadata())});
    do_read();
  }

  std::string metadata() const {
    const ModelSummary& m = ctx_.host().summary();
    msgpack::sbuffer buf;
    Packer pk(buf);
    pk.pack_map(9);
    auto kv_str = [&](const char* k, const std::string& v) { pack_str(pk, k), pack_str(pk, v); };
    auto kv_int = [&](const char* k, int64_t v) { pack_str(pk, k), pk.pack(v); };
    kv_str("server", "flashrt");
    kv_str("version", m.version);
    kv_str("config", m.config);
    kv_str("hardware", m.hardware);
    kv_str("robot", layout_name(ctx_.options().robot));
    kv_int("num_views", m.num_views);
    kv_int("action_horizon", m.action_horizon);
    kv_int("action_dim", m.action_dim);
    kv_int("state_dim", m.state_dim);
    return std::string(buf.data(), buf.size());
  }

  void do_read() {
    if (reading_ || closing_ || pending_replies() >= kMaxPendingReplies) return;
    reading_ = true;
    // Large reads: an observation is ~300 KB; Beast's default chunk (0 = "reasonable") would take
    // dozens of handler round trips per message, which showed up as round-trip overhead.
    constexpr size_t kReadChunk = size_t{1} << 20;
    ws_.async_read_some(in_, kReadChunk,
                        beast::bind_front_handler(&WebsocketSession::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, size_t) {
    reading_ = false;
    if (ec) return;  // closed by the peer, by shutdown(), or a protocol error Beast answered
    const size_t limit = ctx_.options().max_request_bytes;
    if (discarded_ + in_.size() > limit) {  // too big: keep reading to the end, keep nothing
      discarded_ += in_.size();
      in_.consume(in_.size());
    }
    if (!ws_.is_message_done()) return do_read();
    const uint64_t seq = next_seq_++;
    const double t0 = now_ms();
    if (discarded_ > 0) {
      reply_error(seq, 413,
                  "message of " + std::to_string(discarded_) + " bytes exceeds the limit of " +
                      std::to_string(limit) + " bytes (--max-request-mb)",
                  t0);
      discarded_ = 0;
    } else if (ws_.got_text()) {
      reply_error(seq, 400,
                  "expected a binary frame holding a msgpack observation, got a text frame", t0);
    } else {
      handle(seq, static_cast<const char*>(in_.data().data()), in_.size(), t0);
    }
    in_.consume(in_.size());
    do_read();
  }

  void handle(uint64_t seq, const char* data, size_t size, double t0) {
    try {
      ctx_.check_admission(auth_);
      const msgpack::object_handle h = unpack_message(data, size);
      const msgpack::object& obs = h.get();
      if (const msgpack::object* ctrl = find_key(obs, "__ctrl__")) {  // openpi episode hooks
        const std::string c = ctrl->type == msgpack::type::STR
                                  ? std::string(ctrl->via.str.ptr, ctrl->via.str.size)
                                  : "";
        msgpack::sbuffer buf;
        Packer pk(buf);
        pk.pack_map(1);
        pack_str(pk, "__ack__");
        pack_str(pk, c == "episode_start" || c == "episode_end" ? c : "ignored");
        return deliver(seq, Out{std::make_shared<std::string>(buf.data(), buf.size())});
      }
      MappedRequest m = map_observation(obs, ctx_.options(), ctx_.shape());
      auto self = shared_from_this();
      ctx_.submit(
          std::move(m.input),
          [self, seq, t0, t = m.output](InferenceOutput out, std::shared_ptr<InflightToken> token) {
            net::post(self->ws_.get_executor(),
                      [self, seq, t0, t, out = std::move(out), token]() mutable {
                        self->on_result(seq, t0, t, out, std::move(token));
                      });
          });
    } catch (const RequestError& e) {
      reply_error(seq, e.status(), e.what(), t0);
    } catch (const std::exception& e) {  // e.g. bad_alloc: this message fails, the server lives
      reply_error(seq, 500, std::string("internal error: ") + e.what(), t0);
    }
  }

  void on_result(uint64_t seq, double t0, const OutputTransform& t, const InferenceOutput& out,
                 std::shared_ptr<InflightToken> token) {
    if (out.status != 200) return reply_error(seq, out.status, out.error, t0, std::move(token));
    const std::vector<double> actions = apply_output(t, out);
    const int64_t dims = out.horizon > 0 ? static_cast<int64_t>(actions.size()) / out.horizon : 0;
    msgpack::sbuffer buf;
    Packer pk(buf);
    pk.pack_map(3);  // openpi's order: actions, policy_timing, server_timing
    pack_str(pk, "actions");
    pack_ndarray_f64(pk, actions, {out.horizon, dims});
    pack_str(pk, "policy_timing");
    pk.pack_map(1);
    pack_str(pk, "infer_ms");
    pk.pack_double(out.infer_ms);
    pack_str(pk, "server_timing");
    pk.pack_map(prev_total_ms_ >= 0 ? 3 : 2);
    pack_str(pk, "infer_ms");
    pk.pack_double(now_ms() - t0);
    pack_str(pk, "queue_ms");
    pk.pack_double(out.queue_ms);
    if (prev_total_ms_ >= 0) pack_str(pk, "prev_total_ms"), pk.pack_double(prev_total_ms_);
    deliver(seq, Out{std::make_shared<std::string>(buf.data(), buf.size()), true, 200, t0,
                     std::move(token)});
  }

  void reply_error(uint64_t seq, int status, const std::string& message, double t0,
                   std::shared_ptr<InflightToken> token = nullptr) {
    const std::string text =
        std::to_string(status) + " " + reason(status) + ": " + utf8_clean(message);
    deliver(seq, Out{std::make_shared<std::string>(text), false, status, t0, std::move(token)});
  }

  // Replies leave in the order their observations arrived, however they finish.
  void deliver(uint64_t seq, Out out) {
    ready_.emplace(seq, std::move(out));
    while (!ready_.empty() && ready_.begin()->first == send_seq_) {
      enqueue_now(std::move(ready_.begin()->second));
      ready_.erase(ready_.begin());
      ++send_seq_;
    }
  }

  void enqueue_now(Out out) {
    out_.push_back(std::move(out));
    do_write();
  }

  size_t pending_replies() const {
    return static_cast<size_t>(next_seq_ - send_seq_) + out_.size();
  }

  void do_write() {
    if (writing_ || out_.empty()) return maybe_close();
    writing_ = true;
    ws_.binary(out_.front().binary);
    ws_.async_write(net::buffer(*out_.front().bytes),
                    beast::bind_front_handler(&WebsocketSession::on_write, shared_from_this()));
  }

  void on_write(beast::error_code ec, size_t) {
    writing_ = false;
    Out done = std::move(out_.front());
    out_.pop_front();
    if (done.status != 0) {
      const double ms = now_ms() - done.t0;
      ctx_.metrics().record_request("websocket", "ws", done.status, ms / 1000.0);
      if (done.status == 200) prev_total_ms_ = ms;
    }
    done.token.reset();  // reply sent (or the connection is gone): the drain may proceed
    if (ec) {
      out_.clear();
      return;
    }
    do_write();
    do_read();  // resumes reading if it was paused by kMaxPendingReplies
  }

  void maybe_close() {
    if (!closing_ || writing_ || !out_.empty() || close_sent_) return;
    close_sent_ = true;
    ws_.async_close(
        websocket::close_reason(websocket::close_code::going_away, "server shutting down"),
        [self = shared_from_this()](beast::error_code) {});
  }

  websocket::stream<beast::tcp_stream> ws_;
  ServerContext& ctx_;
  std::string auth_;
  beast::flat_buffer in_;
  size_t discarded_ = 0;
  bool reading_ = false, writing_ = false, closing_ = false, close_sent_ = false, counted_ = false;
  uint64_t next_seq_ = 0, send_seq_ = 0;
  std::map<uint64_t, Out> ready_;
  std::deque<Out> out_;
  double prev_total_ms_ = -1;
};

}  // namespace

void start_websocket_session(tcp::socket socket, http::request<http::string_body> request,
                             ServerContext& ctx) {
  std::make_shared<WebsocketSession>(std::move(socket), ctx)->run(std::move(request));
}

}  // namespace frt::server
