// The one header that brings in Boost.Asio and Boost.Beast. Boost 1.74's Asio
// uses std::exchange without including <utility> (awaitable.hpp), which C++20
// with libstdc++ 12 rejects, so <utility> comes first. The TLS layer (Asio's
// OpenSSL stream, and Beast's ssl_stream over it) comes with it: mm_http links
// OpenSSL::SSL.
#pragma once

#include <utility>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

namespace mm {
namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
}  // namespace mm
