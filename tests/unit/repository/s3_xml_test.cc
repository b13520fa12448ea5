#include "repository/s3/s3_xml.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace mm {
namespace {

using ::testing::HasSubstr;

// A page as S3 answers ListObjectsV2 (the shape of AWS's documentation's
// example): ETags quoted with &quot;, keys with entities, an owner and other
// elements the decoder skips, and a continuation token.
constexpr char kTruncatedPage[] = R"(<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>models</Name>
  <Prefix>resnet/</Prefix>
  <KeyCount>3</KeyCount>
  <MaxKeys>3</MaxKeys>
  <IsTruncated>true</IsTruncated>
  <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
  <Contents>
    <Key>resnet/config.pbtxt</Key>
    <LastModified>2024-05-12T17:50:30.000Z</LastModified>
    <ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag>
    <Size>434</Size>
    <StorageClass>STANDARD</StorageClass>
  </Contents>
  <Contents>
    <Key>resnet/1/model &amp; weights &lt;v2&gt;.onnx</Key>
    <LastModified>2024-05-12T17:50:31.000Z</LastModified>
    <ETag>"3858f62230ac3c915f300c664312c11f-9"</ETag>
    <ChecksumAlgorithm>CRC32</ChecksumAlgorithm>
    <ChecksumType>FULL_OBJECT</ChecksumType>
    <Size>94371840</Size>
    <Owner><ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID></Owner>
    <StorageClass>STANDARD</StorageClass>
  </Contents>
  <Contents>
    <Key>resnet/2/model.onnx</Key>
    <ETag>&quot;d41d8cd98f00b204e9800998ecf8427e&quot;</ETag>
    <Size>0</Size>
  </Contents>
</ListBucketResult>)";

// The last page of a listing: one object, not truncated, no token.
constexpr char kLastPage[] =
    R"(<?xml version="1.0" encoding="UTF-8"?>)"
    R"(<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">)"
    R"(<Name>models</Name><Prefix>resnet/</Prefix><KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys>)"
    R"(<IsTruncated>false</IsTruncated>)"
    R"(<Contents><Key>resnet/3/model.onnx</Key><LastModified>2024-05-12T17:50:32.000Z</LastModified>)"
    R"(<ETag>"9b2cf535f27731c974343645a3985328"</ETag><Size>1024</Size>)"
    R"(<StorageClass>STANDARD</StorageClass></Contents></ListBucketResult>)";

// A document with one Contents entry holding `contents`.
std::string PageWith(const std::string& contents) {
  return "<ListBucketResult><IsTruncated>false</IsTruncated><Contents>" + contents +
         "</Contents></ListBucketResult>";
}

// The error of a page that must not parse.
std::string ListError(std::string_view xml) {
  auto page = ParseS3ListPage(xml);
  EXPECT_FALSE(page.ok());
  if (page.ok()) return "";
  EXPECT_EQ(page.status().code(), StatusCode::kInvalidArgument) << page.status().ToString();
  return page.status().message();
}

TEST(S3XmlTest, ParsesATruncatedPage) {
  auto page = ParseS3ListPage(kTruncatedPage);
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  EXPECT_TRUE(page->truncated);
  EXPECT_EQ(page->next_continuation_token, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
  ASSERT_EQ(page->objects.size(), 3u);
  EXPECT_EQ(page->objects[0].key, "resnet/config.pbtxt");
  EXPECT_EQ(page->objects[0].size, 434u);
  EXPECT_EQ(page->objects[0].etag, "fba9dede5f27731c9771645a39863328");
  EXPECT_EQ(page->objects[1].key, "resnet/1/model & weights <v2>.onnx");
  EXPECT_EQ(page->objects[1].size, 94371840u);
  EXPECT_EQ(page->objects[1].etag, "3858f62230ac3c915f300c664312c11f-9");
  EXPECT_FALSE(page->objects[0].crc32);
  EXPECT_TRUE(page->objects[1].crc32);  // its ChecksumAlgorithm
  EXPECT_EQ(page->objects[2].key, "resnet/2/model.onnx");
  EXPECT_EQ(page->objects[2].size, 0u);
  EXPECT_EQ(page->objects[2].etag, "d41d8cd98f00b204e9800998ecf8427e");
}

TEST(S3XmlTest, ParsesTheLastPage) {
  auto page = ParseS3ListPage(kLastPage);
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  EXPECT_FALSE(page->truncated);
  EXPECT_EQ(page->next_continuation_token, "");
  ASSERT_EQ(page->objects.size(), 1u);
  EXPECT_EQ(page->objects[0].key, "resnet/3/model.onnx");
  EXPECT_EQ(page->objects[0].size, 1024u);
  EXPECT_EQ(page->objects[0].etag, "9b2cf535f27731c974343645a3985328");
}

TEST(S3XmlTest, AnEmptyListingHasNoObjects) {
  auto page = ParseS3ListPage(
      R"(<?xml version="1.0" encoding="UTF-8"?>)"
      R"(<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>models</Name>)"
      R"(<Prefix>none/</Prefix><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys>)"
      R"(<IsTruncated>false</IsTruncated></ListBucketResult>)");
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  EXPECT_TRUE(page->objects.empty());
  EXPECT_FALSE(page->truncated);
}

TEST(S3XmlTest, AnObjectWithoutAnETagOrSizeKeepsTheDefaults) {
  auto page = ParseS3ListPage(PageWith("<Key>k</Key>"));
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  ASSERT_EQ(page->objects.size(), 1u);
  EXPECT_EQ(page->objects[0].key, "k");
  EXPECT_EQ(page->objects[0].size, 0u);
  EXPECT_EQ(page->objects[0].etag, "");
}

TEST(S3XmlTest, AnUnquotedETagIsKeptAsIs) {
  auto page = ParseS3ListPage(PageWith("<Key>k</Key><ETag>abc</ETag><Size>1</Size>"));
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  EXPECT_EQ(page->objects[0].etag, "abc");
  // A lone quote is not a pair of quotes.
  page = ParseS3ListPage(PageWith("<Key>k</Key><ETag>&quot;</ETag><Size>1</Size>"));
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  EXPECT_EQ(page->objects[0].etag, "\"");
}

TEST(S3XmlTest, ATruncatedPageWithoutATokenIsRefused) {
  EXPECT_THAT(ListError("<ListBucketResult><IsTruncated>true</IsTruncated>"
                        "<Contents><Key>k</Key><Size>1</Size></Contents></ListBucketResult>"),
              HasSubstr("NextContinuationToken"));
  EXPECT_THAT(ListError("<ListBucketResult><IsTruncated>true</IsTruncated>"
                        "<NextContinuationToken></NextContinuationToken></ListBucketResult>"),
              HasSubstr("NextContinuationToken"));
}

TEST(S3XmlTest, AContentsWithoutAKeyIsRefused) {
  EXPECT_THAT(ListError(PageWith("<Size>1</Size><ETag>\"ab\"</ETag>")), HasSubstr("Key"));
  // A Key nested deeper than in Contents does not count.
  EXPECT_THAT(ListError(PageWith("<Owner><Key>k</Key></Owner><Size>1</Size>")),
              HasSubstr("without a Key"));
}

TEST(S3XmlTest, ABadSizeIsRefused) {
  for (const char* size : {"-1", "12a", "", " 12", "12 ", "+1", "0x10", "1.5", "1e3"}) {
    SCOPED_TRACE(size);
    EXPECT_THAT(ListError(PageWith(std::string("<Key>k</Key><Size>") + size + "</Size>")),
                HasSubstr("Size"));
  }
}

TEST(S3XmlTest, HugeNumbers) {
  // The largest uint64 is a size; one more is not.
  auto page = ParseS3ListPage(PageWith("<Key>k</Key><Size>18446744073709551615</Size>"));
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  EXPECT_EQ(page->objects[0].size, UINT64_MAX);
  EXPECT_THAT(ListError(PageWith("<Key>k</Key><Size>18446744073709551616</Size>")),
              HasSubstr("Size"));
  EXPECT_THAT(ListError(PageWith("<Key>k</Key><Size>" + std::string(400, '9') + "</Size>")),
              HasSubstr("Size"));
}

TEST(S3XmlTest, AHugeNumberOfObjectsAcrossParserSlices) {
  // Over 1 MiB, so the document reaches expat in several slices, some of them
  // cut inside an entity.
  std::string xml = "<ListBucketResult><IsTruncated>false</IsTruncated>";
  constexpr size_t kObjects = 20000;
  for (size_t i = 0; i < kObjects; ++i) {
    xml += "<Contents><Key>models/a&amp;b/" + std::to_string(i) +
           "/model.onnx</Key><ETag>&quot;0123456789abcdef0123456789abcdef&quot;</ETag><Size>" +
           std::to_string(i) + "</Size></Contents>";
  }
  xml += "</ListBucketResult>";
  ASSERT_GT(xml.size(), size_t{2} << 20);
  auto page = ParseS3ListPage(xml);
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  ASSERT_EQ(page->objects.size(), kObjects);
  for (size_t i = 0; i < kObjects; ++i) {
    ASSERT_EQ(page->objects[i].key, "models/a&b/" + std::to_string(i) + "/model.onnx");
    ASSERT_EQ(page->objects[i].size, i);
    ASSERT_EQ(page->objects[i].etag, "0123456789abcdef0123456789abcdef");
  }
}

TEST(S3XmlTest, NonXmlIsRefused) {
  EXPECT_THAT(ListError("not xml at all"), HasSubstr("not well-formed XML"));
  EXPECT_THAT(ListError("{\"Contents\": []}"), HasSubstr("not well-formed XML"));
  EXPECT_THAT(ListError(std::string("<ListBucketResult>") + '\0' + "</ListBucketResult>"),
              HasSubstr("not well-formed XML"));
  // Cut short, as by a dropped connection.
  const std::string page = kTruncatedPage;
  EXPECT_THAT(ListError(page.substr(0, page.size() / 2)), HasSubstr("not well-formed XML"));
  // Two roots.
  EXPECT_THAT(ListError("<ListBucketResult/><ListBucketResult/>"),
              HasSubstr("not well-formed XML"));
}

TEST(S3XmlTest, AnEmptyDocumentIsRefused) {
  EXPECT_THAT(ListError(""), HasSubstr("not well-formed XML"));
  EXPECT_THAT(ListError("<?xml version=\"1.0\"?>\n"), HasSubstr("not well-formed XML"));
}

TEST(S3XmlTest, ADifferentRootIsRefused) {
  EXPECT_THAT(ListError("<ListAllMyBucketsResult><Buckets/></ListAllMyBucketsResult>"),
              HasSubstr("not a ListBucketResult"));
  EXPECT_THAT(ListError("<Error><Code>NoSuchBucket</Code></Error>"),
              HasSubstr("not a ListBucketResult"));
  // A ListBucketResult that is not the root does not count.
  const std::string last = kLastPage;
  EXPECT_THAT(ListError("<Wrapper>" + last.substr(last.find("<ListBucketResult")) + "</Wrapper>"),
              HasSubstr("not a ListBucketResult"));
}

TEST(S3XmlTest, DeepNestingIsRefused) {
  // Depth counts the root: 32 levels pass, 33 do not.
  auto nested = [](size_t depth) {
    std::string xml = "<ListBucketResult>";
    for (size_t i = 1; i < depth; ++i) xml += "<a>";
    for (size_t i = 1; i < depth; ++i) xml += "</a>";
    return xml + "</ListBucketResult>";
  };
  auto page = ParseS3ListPage(nested(32));
  EXPECT_TRUE(page.ok()) << page.status().ToString();
  EXPECT_THAT(ListError(nested(33)), HasSubstr("nests deeper than 32"));
  EXPECT_THAT(ListError(nested(100000)), HasSubstr("nests deeper than 32"));
}

TEST(S3XmlTest, EntityExpansionIsBounded) {
  // A "billion laughs": expat's amplification limit refuses it.
  std::string xml = "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY l0 \"lol\">";
  for (int i = 1; i <= 12; ++i) {
    xml += "<!ENTITY l" + std::to_string(i) + " \"";
    for (int j = 0; j < 10; ++j) xml += "&l" + std::to_string(i - 1) + ";";
    xml += "\">";
  }
  xml += "]><ListBucketResult><Contents><Key>&l12;</Key></Contents></ListBucketResult>";
  EXPECT_THAT(ListError(xml), HasSubstr("not well-formed XML"));
}

TEST(S3XmlTest, ExternalEntitiesAreNotRead) {
  auto page = ParseS3ListPage(
      "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
      "<ListBucketResult><Contents><Key>a&x;b</Key></Contents></ListBucketResult>");
  if (page.ok()) {
    ASSERT_EQ(page->objects.size(), 1u);
    EXPECT_EQ(page->objects[0].key, "ab");
  } else {
    EXPECT_EQ(page.status().code(), StatusCode::kInvalidArgument);
  }
}

TEST(S3XmlTest, ParsesAnErrorBody) {
  S3Error error = ParseS3Error(R"(<?xml version="1.0" encoding="UTF-8"?>
<Error>
  <Code>NoSuchKey</Code>
  <Message>The specified key does not exist.</Message>
  <Key>resnet/1/model.onnx</Key>
  <BucketName>models</BucketName>
  <Resource>/models/resnet/1/model.onnx</Resource>
  <RequestId>4442587FB7D0A2F9</RequestId>
  <HostId>JuKZqmXuiwFeDQxhD7M8KtsKobSzWA1QEjLbTMTagkKdBX2z7Il/jGhDeJ3j6s80</HostId>
</Error>)");
  EXPECT_EQ(error.code, "NoSuchKey");
  EXPECT_EQ(error.message, "The specified key does not exist.");

  error = ParseS3Error(
      "<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated "
      "does not match the signature you provided. Check your key &amp; signing method."
      "</Message></Error>");
  EXPECT_EQ(error.code, "SignatureDoesNotMatch");
  EXPECT_THAT(error.message, HasSubstr("your key & signing method"));

  error = ParseS3Error("<Error><Code>AccessDenied</Code></Error>");
  EXPECT_EQ(error.code, "AccessDenied");
  EXPECT_EQ(error.message, "");
}

TEST(S3XmlTest, AnErrorBodyThatIsNotOneGivesEmptyFields) {
  // A proxy's page, well-formed or not.
  for (const char* body :
       {"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad "
        "Gateway</h1></center><hr><center>nginx</center></body></html>",
        "<!DOCTYPE html><html><body><p>Service Unavailable</p></body></html>",
        "<Wrapper><Error><Code>NoSuchKey</Code></Error></Wrapper>"}) {
    SCOPED_TRACE(body);
    const S3Error error = ParseS3Error(body);
    EXPECT_EQ(error.code, "");
    EXPECT_EQ(error.message, "");
  }
}

TEST(S3XmlTest, AnErrorBodyOfGarbageGivesEmptyFields) {
  for (const std::string& body :
       {std::string(""), std::string("garbage \x01\xff\xfe"), std::string("\0\0\0", 3),
        std::string("<Error><Code>NoSuchKey</Code><Message>cut sh")}) {
    const S3Error error = ParseS3Error(body);
    EXPECT_EQ(error.code, "");
    EXPECT_EQ(error.message, "");
  }
  std::string deep = "<Error><Code>X</Code>";
  for (int i = 0; i < 40; ++i) deep += "<a>";
  for (int i = 0; i < 40; ++i) deep += "</a>";
  deep += "</Error>";
  EXPECT_EQ(ParseS3Error(deep).code, "");
}

}  // namespace
}  // namespace mm
