// The HTTP/1.1 connection (see http_session.h).
// Tests: tests/python/test_server_http.py, tests/python/test_server_bad_inputs.py.
#include "server/http_session.h"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <chrono>
#include <memory>
#include <optional>

#include "server/http_json.h"
#include "server/http_routes.h"
#include "server/websocket_session.h"

namespace frt::server {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

constexpr auto kIdleTimeout = std::chrono::seconds(60);  // keep-alive / slow-client limit
constexpr size_t kMaxDrainBytes = size_t{64} << 20;      // read at most this after a 413
constexpr size_t kBodyReadBytes = size_t{64} << 10;      // Beast's largest single read

std::string metrics_route(const std::string& target) {
  const std::string path = target.substr(0, target.find('?'));
  for (const char* r : {"/predict", "/health", "/healthz", "/metrics"})
    if (path == r) return path;
  return "other";
}

class HttpSession : public Closeable, public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(tcp::socket&& socket, ServerContext& ctx) : stream_(std::move(socket)), ctx_(ctx) {}

  void run() {
    ctx_.track(weak_from_this());
    net::dispatch(stream_.get_executor(),
                  beast::bind_front_handler(&HttpSession::do_read_header, shared_from_this()));
  }

  void shutdown() override {
    net::post(stream_.get_executor(), [self = shared_from_this()] {
      self->stopping_ = true;
      if (!self->busy_) self->close();
    });
  }

 private:
  void do_read_header() {
    busy_ = false;
    if (stopping_) return close();
    parser_.emplace();
    parser_->header_limit(16 * 1024);
    parser_->body_limit(ctx_.options().max_request_bytes);
    stream_.expires_after(kIdleTimeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&HttpSession::on_header, shared_from_this()));
  }

  void on_header(beast::error_code ec, size_t) {
    busy_ = true;
    t0_ = now_ms();
    target_ = parser_->is_header_done() ? std::string(parser_->get().target()) : "";
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == net::error::operation_aborted)
      return close();
    if (ec) return read_error(ec);
    auto& req = parser_->get();
    keep_alive_ = req.keep_alive();
    if (beast::websocket::is_upgrade(req)) {
      try {
        ctx_.check_admission(std::string(req[http::field::authorization]));
      } catch (const RequestError& e) {
        keep_alive_ = false;
        return send(error_answer(e.status(), e.what()));
      }
      stream_.expires_never();
      start_websocket_session(stream_.release_socket(), parser_->release(), ctx_);
      return;
    }
    if (req[http::field::expect] == "100-continue") {
      auto cont = std::make_shared<http::response<http::empty_body>>(http::status::continue_,
                                                                     req.version());
      return http::async_write(stream_, *cont,
                               [self = shared_from_this(), cont](beast::error_code e, size_t) {
                                 if (e) return self->close();
                                 self->read_body();
                               });
    }
    read_body();
  }

  void read_body() {
    // Beast reads at most the buffer's free capacity per call (min 512 bytes, max 64 KiB) and
    // never grows it while the parser consumes: with the small capacity left by the header
    // read, a 400 KB body took hundreds of reads (2.5-3.6 ms on loopback; 0.1 ms with 64 KiB).
    buffer_.reserve(kBodyReadBytes);
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&HttpSession::on_body, shared_from_this()));
  }

  void read_error(beast::error_code ec) {
    keep_alive_ = false;
    if (ec == http::error::body_limit) {
      drain_after_ = true;
      return send(error_answer(413, "request body exceeds the limit of " +
                                        std::to_string(ctx_.options().max_request_bytes) +
                                        " bytes (--max-request-mb)"));
    }
    if (ec == http::error::header_limit)
      return send(error_answer(431, "request header exceeds 16 KiB"));
    if (ec == beast::error::timeout || ec == net::error::operation_aborted) return close();
    send(error_answer(400, "malformed HTTP request: " + ec.message()));
  }

  void on_body(beast::error_code ec, size_t) {
    if (ec) return read_error(ec);
    stream_.expires_never();  // the answer may wait for the worker
    const auto& req = parser_->get();
    bool is_predict = false;
    HttpAnswer answer = route(ctx_, std::string(req.method_string()), target_, &is_predict);
    if (!is_predict) return send(std::move(answer));
    try {
      ctx_.check_admission(std::string(req[http::field::authorization]));
      InferenceInput in = parse_predict_json(req.body(), ctx_.shape());
      auto self = shared_from_this();
      ctx_.submit(std::move(in), [self](InferenceOutput out, std::shared_ptr<InflightToken> token) {
        net::post(self->stream_.get_executor(), [self, out = std::move(out), token]() mutable {
          self->token_ = std::move(token);
          self->send(predict_answer(self->ctx_, out, now_ms() - self->t0_));
        });
      });
    } catch (const RequestError& e) {
      send(error_answer(e.status(), e.what()));
    } catch (const std::exception& e) {
      send(error_answer(500, std::string("internal error: ") + e.what()));
    }
  }

  void send(HttpAnswer a) {
    auto res = std::make_shared<http::response<http::string_body>>();
    res->version(11);
    res->result(static_cast<http::status>(a.status));
    res->set(http::field::server, "flashrt/" + flashrt::version());
    res->set(http::field::content_type, a.content_type);
    for (const auto& [k, v] : a.headers) res->set(k, v);
    const bool head =
        parser_ && parser_->is_header_done() && parser_->get().method() == http::verb::head;
    res->keep_alive(keep_alive_ && !stopping_);
    if (head) {
      res->content_length(a.body.size());
    } else {
      res->body() = std::move(a.body);
      res->prepare_payload();
    }
    // Counted before the write: a client that has read this answer may ask /metrics at once
    // (on another connection) and must find it counted.
    ctx_.metrics().record_request("http", metrics_route(target_), a.status,
                                  (now_ms() - t0_) / 1000.0);
    stream_.expires_after(kIdleTimeout);
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res](beast::error_code ec, size_t) {
                        self->on_write(ec, res->keep_alive());
                      });
  }

  void on_write(beast::error_code ec, bool keep_alive) {
    token_.reset();
    if (ec) return close();
    if (drain_after_) return linger();
    if (!keep_alive) return close();
    do_read_header();
  }

  // After a 413: stop sending, read (and drop) what the client still sends, so it reads our
  // answer instead of a connection reset.
  void linger() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(std::chrono::seconds(5));
    drain_buf_.resize(64 * 1024);
    drain_read();
  }
  void drain_read() {
    stream_.async_read_some(net::buffer(drain_buf_),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              self->drained_ += n;
                              if (ec || self->drained_ > kMaxDrainBytes) return self->close();
                              self->drain_read();
                            });
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
  }

  beast::tcp_stream stream_;
  ServerContext& ctx_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::shared_ptr<InflightToken> token_;
  std::string target_;
  std::vector<char> drain_buf_;
  size_t drained_ = 0;
  double t0_ = 0;
  bool keep_alive_ = false, busy_ = false, stopping_ = false, drain_after_ = false;
};

}  // namespace

void start_http_session(tcp::socket socket, ServerContext& ctx) {
  std::make_shared<HttpSession>(std::move(socket), ctx)->run();
}

}  // namespace frt::server
