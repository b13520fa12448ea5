// A Beast body type like string_body, except that it reserves
// kRequestBodyPadding spare bytes past the declared Content-Length, so the
// inference decoder can hand the JSON header to simdjson in place instead of
// copying it into a padded buffer.
#pragma once

#include <cstdint>
#include <string>

#include "http/asio.h"
#include "http/infer_codec.h"

namespace mm {

struct PaddedStringBody {
  using value_type = std::string;

  class reader {
   public:
    template <bool isRequest, class Fields>
    reader(bhttp::header<isRequest, Fields>&, value_type& body) : body_(body) {}

    void init(const boost::optional<std::uint64_t>& length, beast::error_code& ec) {
      // The parser has already checked `length` against its body limit.
      if (length) body_.reserve(static_cast<size_t>(*length) + kRequestBodyPadding);
      ec = {};
    }

    template <class ConstBufferSequence>
    std::size_t put(const ConstBufferSequence& buffers, beast::error_code& ec) {
      const size_t extra = net::buffer_size(buffers);
      const size_t size = body_.size();
      if (body_.capacity() < size + extra + kRequestBodyPadding) {
        // Chunked or growing body: keep the padding available as it grows.
        body_.reserve(std::max(body_.capacity() * 2, size + extra + kRequestBodyPadding));
      }
      body_.resize(size + extra);
      net::buffer_copy(net::buffer(body_.data() + size, extra), buffers);
      ec = {};
      return extra;
    }

    void finish(beast::error_code& ec) { ec = {}; }

   private:
    value_type& body_;
  };
};

}  // namespace mm
