#include "repository/s3/s3_xml.h"

#include <expat.h>

#include <charconv>
#include <memory>

namespace mm {
namespace {

// Deeper documents are refused: S3's answers nest three levels.
constexpr size_t kMaxDepth = 32;

// Collects the text of the elements at the paths a decoder asks about.
struct Collector {
  std::vector<std::string> path;  // element names from the root
  std::string text;               // character data of the innermost element
  bool too_deep = false;
  // Called at each closing tag with the path still including it.
  void (*on_end)(Collector&, void* out) = nullptr;
  void* out = nullptr;
};

void XMLCALL StartElement(void* data, const XML_Char* name, const XML_Char**) {
  auto& c = *static_cast<Collector*>(data);
  if (c.path.size() >= kMaxDepth) {
    c.too_deep = true;
    return;
  }
  c.path.emplace_back(name);
  c.text.clear();
}

void XMLCALL EndElement(void* data, const XML_Char*) {
  auto& c = *static_cast<Collector*>(data);
  if (c.too_deep || c.path.empty()) return;
  c.on_end(c, c.out);
  c.path.pop_back();
  c.text.clear();
}

void XMLCALL CharacterData(void* data, const XML_Char* s, int len) {
  auto& c = *static_cast<Collector*>(data);
  if (!c.too_deep) c.text.append(s, static_cast<size_t>(len));
}

// Parses `xml` through `c`; INVALID_ARGUMENT with expat's reason and line.
Status Parse(std::string_view xml, Collector& c, std::string_view what) {
  std::unique_ptr<XML_ParserStruct, void (*)(XML_Parser)> parser(XML_ParserCreate("UTF-8"),
                                                                 XML_ParserFree);
  if (!parser) return Internal("cannot create an XML parser");
  XML_SetUserData(parser.get(), &c);
  XML_SetElementHandler(parser.get(), StartElement, EndElement);
  XML_SetCharacterDataHandler(parser.get(), CharacterData);
  // Documents may be larger than an int: feed them in slices.
  constexpr size_t kSlice = 1 << 20;
  size_t offset = 0;
  do {
    const size_t n = std::min(kSlice, xml.size() - offset);
    const bool last = offset + n == xml.size();
    if (XML_Parse(parser.get(), xml.data() + offset, static_cast<int>(n), last) ==
        XML_STATUS_ERROR) {
      return InvalidArgument(std::string(what) + " is not well-formed XML (" +
                             XML_ErrorString(XML_GetErrorCode(parser.get())) + " at line " +
                             std::to_string(XML_GetCurrentLineNumber(parser.get())) + ")");
    }
    offset += n;
  } while (offset < xml.size());
  if (c.too_deep) {
    return InvalidArgument(std::string(what) + " nests deeper than " + std::to_string(kMaxDepth) +
                           " elements");
  }
  return OkStatus();
}

struct ListState {
  bool root_ok = false;
  bool bad_size = false;
  bool missing_key = false;
  std::string truncated_text;
  S3Object current;
  bool has_key = false;
  S3ListPage page;
};

void OnListEnd(Collector& c, void* out) {
  auto& s = *static_cast<ListState*>(out);
  const auto& p = c.path;
  if (p.size() == 1) {
    s.root_ok = p[0] == "ListBucketResult";
    return;
  }
  if (p[0] != "ListBucketResult") return;
  if (p.size() == 2) {
    if (p[1] == "IsTruncated") s.truncated_text = c.text;
    if (p[1] == "NextContinuationToken") s.page.next_continuation_token = c.text;
    if (p[1] == "Contents") {
      if (!s.has_key) s.missing_key = true;
      s.page.objects.push_back(std::move(s.current));
      s.current = S3Object();
      s.has_key = false;
    }
    return;
  }
  if (p.size() == 3 && p[1] == "Contents") {
    if (p[2] == "Key") {
      s.current.key = c.text;
      s.has_key = true;
    } else if (p[2] == "Size") {
      const char* end = c.text.data() + c.text.size();
      auto [ptr, ec] = std::from_chars(c.text.data(), end, s.current.size);
      if (c.text.empty() || ec != std::errc() || ptr != end) s.bad_size = true;
    } else if (p[2] == "ETag") {
      std::string_view etag = c.text;
      if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') {
        etag = etag.substr(1, etag.size() - 2);
      }
      s.current.etag = etag;
    } else if (p[2] == "ChecksumAlgorithm" && c.text == "CRC32") {
      s.current.crc32 = true;
    }
  }
}

void OnErrorEnd(Collector& c, void* out) {
  auto& e = *static_cast<S3Error*>(out);
  if (c.path.size() != 2 || c.path[0] != "Error") return;
  if (c.path[1] == "Code") e.code = c.text;
  if (c.path[1] == "Message") e.message = c.text;
}

}  // namespace

StatusOr<S3ListPage> ParseS3ListPage(std::string_view xml) {
  constexpr std::string_view kWhat = "the object listing";
  ListState state;
  Collector c;
  c.on_end = OnListEnd;
  c.out = &state;
  MM_RETURN_IF_ERROR(Parse(xml, c, kWhat));
  if (!state.root_ok) {
    return InvalidArgument(std::string(kWhat) + " is not a ListBucketResult document");
  }
  if (state.missing_key) {
    return InvalidArgument(std::string(kWhat) + " has an object (Contents) without a Key");
  }
  if (state.bad_size) {
    return InvalidArgument(std::string(kWhat) +
                           " has an object whose Size is not a non-negative integer");
  }
  state.page.truncated = state.truncated_text == "true";
  if (state.page.truncated && state.page.next_continuation_token.empty()) {
    return InvalidArgument(std::string(kWhat) +
                           " says it is truncated but gives no NextContinuationToken");
  }
  return std::move(state.page);
}

S3Error ParseS3Error(std::string_view xml) {
  S3Error error;
  Collector c;
  c.on_end = OnErrorEnd;
  c.out = &error;
  if (!Parse(xml, c, "error").ok()) return S3Error();
  return error;
}

}  // namespace mm
