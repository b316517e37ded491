// http_proto: the HTTP/1.1 protocol logic shared by the demo
// thread-per-connection server (demo/http_server.c) and the reference epoll
// server (bench/epoll_http.cpp), so the two answer byte for byte alike:
// finding and parsing a request head, mapping a target to a path under the
// document root, status texts, content types, response head and error
// response formatting, and the access log line.
//
// Pure functions over caller-owned buffers: no sockets, no file access, no
// locking, no allocation; they may read the clock (Date header, log
// timestamp). Each server keeps its own I/O model (threads or epoll) and
// decides when to read, write, log and close. Plain C, usable from C++.
#ifndef UNBLOCK_DEMO_HTTP_PROTO_H
#define UNBLOCK_DEMO_HTTP_PROTO_H

#include <stddef.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
  kHttpMaxTarget = 2048,     // longer request targets get 414
  kHttpMaxLogRequest = 512,  // request line as written to the access log
  kHttpMaxLogLine = 1024     // a whole access log line, newline included
};

// One parsed request; method and target point into the parsed head.
struct HttpRequest {
  const char* method;
  const char* target;
  int minor;                      // HTTP/1.<minor>
  int keep_alive;                 // answer and keep reading on this connection
  int head_only;                  // HEAD
  unsigned long long body_length; // request body bytes to skip (Content-Length)
  char log_line[kHttpMaxLogRequest];
};

// Drops what precedes the next request head at the start of in[0, *in_len):
// request body bytes still to skip (*discard counts down) and empty lines
// before a request line (RFC 9112, 2.2). Returns the length of the complete
// head now at in[0], up to and including the empty line that ends it, or 0
// if none is complete yet.
size_t http_next_head(char* in, size_t* in_len, unsigned long long* discard);

// The status for a full input buffer that holds no complete head: 414 if it
// does not even hold the request line, else 400. The connection then ends.
int http_overflow_status(const char* in, size_t len);

// Parses the head in head[0, head_len) in place (it is cut into
// NUL-terminated pieces). Returns 0 for a GET or HEAD to serve, or the
// status of the error response to send: 400 (malformed; rq->keep_alive is 0)
// or 405 (other methods). rq->log_line is always set; rq->minor is 1 until
// the version is known, so error responses use it as it is.
int http_parse_request(char* head, size_t head_len, struct HttpRequest* rq);

// Turns a request target into ROOT plus the percent-decoded path in path.
// Returns 0, or the status to answer with: 400 (not origin or absolute form,
// bad escape, a ".." segment) or 414 (too long).
int http_target_to_path(const char* root, const char* target, char* path,
                        size_t path_len);

// Appends "index.html" (after a '/' if needed) to a directory's path.
// Returns 0, or 414 if it does not fit.
int http_append_index(char* path, size_t path_len);

const char* http_reason(int status);
const char* http_content_type(const char* path);

// Writes the status line and headers into buf; returns their length, or 0 if
// they do not fit. mtime may be NULL (no Last-Modified); allow adds the Allow
// header of a 405.
size_t http_format_head(char* buf, size_t len, int status, const char* type,
                        unsigned long long length, const time_t* mtime,
                        int keep_alive, int minor, int allow);

// Writes a whole small error response (head, and the HTML body unless
// head_only) into buf; returns its length, or 0 if it does not fit.
// *log_bytes gets the body byte count for the access log.
size_t http_format_error(char* buf, size_t len, int status, int head_only,
                         int keep_alive, int minor,
                         unsigned long long* log_bytes);

// Writes one access log line in common log format, newline included:
//   HOST - - [DD/Mon/YYYY:HH:MM:SS +ZZZZ] "REQUEST LINE" STATUS BYTES
// (BYTES "-" when 0). Returns its length (truncated to fit buf).
size_t http_format_log_line(char* buf, size_t len, const char* peer,
                            const char* request, int status,
                            unsigned long long body_bytes);

#ifdef __cplusplus
}
#endif

#endif  // UNBLOCK_DEMO_HTTP_PROTO_H
