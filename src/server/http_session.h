// One HTTP/1.1 connection (Boost.Beast): keep-alive, header then body with the size limit
// (413 before the body is read when Content-Length is too big; the rest is drained so the
// client sees the answer), "Expect: 100-continue", routes from http_routes, POST /predict
// through the request queue without blocking the network thread, and the hand-over of
// websocket upgrades to websocket_session.
// Tests: tests/python/test_server_http.py, tests/python/test_server_bad_inputs.py.
#pragma once

#include <boost/asio/ip/tcp.hpp>

#include "server/server_context.h"

namespace frt::server {

// Starts serving an accepted connection; the session keeps itself alive.
void start_http_session(boost::asio::ip::tcp::socket socket, ServerContext& ctx);

}  // namespace frt::server
