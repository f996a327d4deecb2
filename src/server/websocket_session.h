// One openpi websocket connection (Boost.Beast): sends the metadata map after the handshake,
// then answers each binary msgpack observation with a msgpack result map ("actions",
// "policy_timing", "server_timing"), in the order the observations arrived. A bad message is
// answered with a text frame naming the problem (openpi clients raise it) and the connection
// stays usable. A read is always pending, so pings are answered while the model runs; an
// oversized message is read to its end and discarded, then refused, so the stream stays in sync.
// Facts: openpi src/openpi/serving/websocket_policy_server.py; ../shared/spec/openpi-protocol.md.
// Tests: tests/python/test_server_openpi.py, tests/python/test_server_bad_inputs.py.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "server/server_context.h"

namespace frt::server {

// Takes over an accepted HTTP upgrade request; the session keeps itself alive.
void start_websocket_session(boost::asio::ip::tcp::socket socket,
                             boost::beast::http::request<boost::beast::http::string_body> request,
                             ServerContext& ctx);

}  // namespace frt::server
