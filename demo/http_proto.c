// http_proto: the HTTP/1.1 protocol logic shared by demo/http_server.c and
// bench/epoll_http.cpp (see http_proto.h). Pure functions over caller-owned
// buffers; must not do socket or file I/O, lock or allocate.
#define _POSIX_C_SOURCE 200809L
#include "http_proto.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

size_t http_next_head(char* in, size_t* in_len, unsigned long long* discard) {
  if (*discard > 0 && *in_len > 0) {
    size_t n = *in_len;
    if (n > *discard) n = (size_t)*discard;
    memmove(in, in + n, *in_len - n);
    *in_len -= n;
    *discard -= n;
  }
  if (*discard > 0) return 0;
  size_t skip = 0;
  while (skip < *in_len && (in[skip] == '\r' || in[skip] == '\n')) skip++;
  if (skip > 0) {
    memmove(in, in + skip, *in_len - skip);
    *in_len -= skip;
  }
  size_t line = 0;
  for (size_t i = 0; i < *in_len; i++) {
    if (in[i] != '\n') continue;
    size_t line_len = i - line;
    if (line_len == 0 || (line_len == 1 && in[line] == '\r')) return i + 1;
    line = i + 1;
  }
  return 0;
}

int http_overflow_status(const char* in, size_t len) {
  return memchr(in, '\n', len) == NULL ? 414 : 400;
}

// Copies a request line for the log: quotes, backslashes and bytes that are
// not printable ASCII are escaped, and the result is truncated to fit.
static void log_escape(char* dst, size_t dst_len, const char* src) {
  static const char hex[] = "0123456789abcdef";
  size_t o = 0;
  for (const unsigned char* s = (const unsigned char*)src; *s != '\0'; s++) {
    if (*s == '"' || *s == '\\') {
      if (o + 2 >= dst_len) break;
      dst[o++] = '\\';
      dst[o++] = (char)*s;
    } else if (*s < 0x20 || *s >= 0x7f) {
      if (o + 4 >= dst_len) break;
      dst[o++] = '\\';
      dst[o++] = 'x';
      dst[o++] = hex[*s >> 4];
      dst[o++] = hex[*s & 15];
    } else {
      if (o + 1 >= dst_len) break;
      dst[o++] = (char)*s;
    }
  }
  dst[o] = '\0';
}

static int is_tchar(unsigned char ch) {
  return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
         (ch >= 'A' && ch <= 'Z') ||
         (ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static int is_token(const char* s) {
  if (*s == '\0') return 0;
  for (; *s != '\0'; s++)
    if (!is_tchar((unsigned char)*s)) return 0;
  return 1;
}

// Cuts the next line out of [*p, end): NUL-terminates it (dropping a CR) and
// advances *p. The head always ends in '\n', so a line is always found.
static char* next_line(char** p, char* end) {
  char* start = *p;
  char* nl = memchr(start, '\n', (size_t)(end - start));
  *p = nl + 1;
  if (nl > start && nl[-1] == '\r') nl--;
  *nl = '\0';
  return start;
}

static char* trim(char* s) {
  while (*s == ' ' || *s == '\t') s++;
  size_t len = strlen(s);
  while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t')) s[--len] = '\0';
  return s;
}

int http_parse_request(char* head, size_t head_len, struct HttpRequest* rq) {
  memset(rq, 0, sizeof *rq);
  rq->minor = 1;
  char* p = head;
  char* end = head + head_len;

  char* line = next_line(&p, end);
  log_escape(rq->log_line, sizeof rq->log_line, line);

  // request-line = method SP request-target SP HTTP-version
  char* sp1 = strchr(line, ' ');
  char* sp2 = sp1 != NULL ? strchr(sp1 + 1, ' ') : NULL;
  if (sp2 == NULL || strchr(sp2 + 1, ' ') != NULL) return 400;
  *sp1 = '\0';
  *sp2 = '\0';
  rq->method = line;
  rq->target = sp1 + 1;
  const char* version = sp2 + 1;
  if (!is_token(rq->method) || rq->target[0] == '\0' ||
      strncmp(version, "HTTP/1.", 7) != 0 || version[7] < '0' ||
      version[7] > '9' || version[8] != '\0')
    return 400;
  rq->minor = version[7] - '0';
  for (const char* s = rq->target; *s != '\0'; s++)
    if ((unsigned char)*s <= 0x20 || *s == 0x7f) return 400;

  int conn_close = 0;
  int conn_keep_alive = 0;
  int have_length = 0;
  unsigned long long length = 0;
  while (p < end) {
    line = next_line(&p, end);
    if (line[0] == '\0') break;  // the empty line that ends the head
    char* colon = strchr(line, ':');
    // obsolete line folding or no field name
    if (line[0] == ' ' || line[0] == '\t' || colon == NULL) return 400;
    *colon = '\0';
    if (!is_token(line)) return 400;
    char* value = trim(colon + 1);
    if (strcasecmp(line, "Connection") == 0) {
      char* save;
      for (char* tok = strtok_r(value, ",", &save); tok != NULL;
           tok = strtok_r(NULL, ",", &save)) {
        tok = trim(tok);
        if (strcasecmp(tok, "close") == 0) conn_close = 1;
        if (strcasecmp(tok, "keep-alive") == 0) conn_keep_alive = 1;
      }
    } else if (strcasecmp(line, "Content-Length") == 0) {
      unsigned long long v = 0;
      if (value[0] == '\0') return 400;
      for (const char* s = value; *s != '\0'; s++) {
        if (*s < '0' || *s > '9' || v > (ULLONG_MAX - 9) / 10) return 400;
        v = v * 10 + (unsigned long long)(*s - '0');
      }
      if (have_length && v != length) return 400;
      have_length = 1;
      length = v;
    } else if (strcasecmp(line, "Transfer-Encoding") == 0) {
      return 400;  // chunked request bodies are not supported: cannot frame
    }
  }

  rq->keep_alive =
      rq->minor >= 1 ? !conn_close : conn_keep_alive && !conn_close;
  rq->body_length = length;
  rq->head_only = strcmp(rq->method, "HEAD") == 0;
  if (!rq->head_only && strcmp(rq->method, "GET") != 0) return 405;
  return 0;
}

static int hex_value(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

int http_target_to_path(const char* root, const char* target, char* path,
                        size_t path_len) {
  if (strlen(target) > kHttpMaxTarget) return 414;
  // absolute-form: http://host[:port]/path
  if (strncasecmp(target, "http://", 7) == 0) {
    target = strchr(target + 7, '/');
    if (target == NULL) target = "/";
  }
  if (target[0] != '/') return 400;

  char decoded[kHttpMaxTarget + 1];
  size_t d = 0;
  for (const char* s = target; *s != '\0' && *s != '?' && *s != '#'; s++) {
    char ch = *s;
    if (ch == '%') {
      int hi = hex_value(s[1]);
      int lo = hi < 0 ? -1 : hex_value(s[2]);
      if (lo < 0) return 400;
      ch = (char)(hi * 16 + lo);
      if (ch == '\0') return 400;
      s += 2;
    }
    decoded[d++] = ch;
  }
  decoded[d] = '\0';

  // Reject any ".." segment of the decoded path; "%2e%2e" and "..%2f" land
  // here too.
  for (const char* seg = decoded; seg != NULL;) {
    const char* slash = strchr(seg, '/');
    size_t seg_len = slash != NULL ? (size_t)(slash - seg) : strlen(seg);
    if (seg_len == 2 && seg[0] == '.' && seg[1] == '.') return 400;
    seg = slash != NULL ? slash + 1 : NULL;
  }

  int n = snprintf(path, path_len, "%s%s", root, decoded);
  if (n < 0 || (size_t)n >= path_len) return 414;
  return 0;
}

int http_append_index(char* path, size_t path_len) {
  size_t len = strlen(path);
  const char* sep = len > 0 && path[len - 1] == '/' ? "" : "/";
  if (len + strlen(sep) + strlen("index.html") >= path_len) return 414;
  strcat(path, sep);
  strcat(path, "index.html");
  return 0;
}

const char* http_reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 414: return "URI Too Long";
    default: return "Internal Server Error";
  }
}

const char* http_content_type(const char* path) {
  static const struct {
    const char* ext;
    const char* type;
  } kTypes[] = {
      {"html", "text/html; charset=utf-8"},
      {"htm", "text/html; charset=utf-8"},
      {"txt", "text/plain; charset=utf-8"},
      {"css", "text/css"},
      {"js", "application/javascript"},
      {"json", "application/json"},
      {"xml", "application/xml"},
      {"png", "image/png"},
      {"jpg", "image/jpeg"},
      {"jpeg", "image/jpeg"},
      {"gif", "image/gif"},
      {"svg", "image/svg+xml"},
      {"ico", "image/x-icon"},
      {"pdf", "application/pdf"},
  };
  const char* slash = strrchr(path, '/');
  const char* dot = strrchr(path, '.');
  if (dot != NULL && (slash == NULL || dot > slash)) {
    for (size_t i = 0; i < sizeof kTypes / sizeof kTypes[0]; i++)
      if (strcasecmp(dot + 1, kTypes[i].ext) == 0) return kTypes[i].type;
  }
  return "application/octet-stream";
}

size_t http_format_head(char* buf, size_t len, int status, const char* type,
                        unsigned long long length, const time_t* mtime,
                        int keep_alive, int minor, int allow) {
  char date[64];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  char modified[96] = "";
  if (mtime != NULL) {
    char m[64];
    gmtime_r(mtime, &tm);
    strftime(m, sizeof m, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    snprintf(modified, sizeof modified, "Last-Modified: %s\r\n", m);
  }
  const char* conn = !keep_alive ? "Connection: close\r\n"
                     : minor == 0 ? "Connection: keep-alive\r\n"
                                  : "";
  int n = snprintf(buf, len,
                   "HTTP/1.1 %d %s\r\n"
                   "Server: unblock-demo\r\n"
                   "Date: %s\r\n"
                   "%s"
                   "Content-Type: %s\r\n"
                   "Content-Length: %llu\r\n"
                   "%s%s"
                   "\r\n",
                   status, http_reason(status), date, modified, type, length,
                   allow ? "Allow: GET, HEAD\r\n" : "", conn);
  if (n < 0 || (size_t)n >= len) return 0;
  return (size_t)n;
}

size_t http_format_error(char* buf, size_t len, int status, int head_only,
                         int keep_alive, int minor,
                         unsigned long long* log_bytes) {
  char body[128];
  int body_len = snprintf(body, sizeof body,
                          "<html><body><h1>%d %s</h1></body></html>\n", status,
                          http_reason(status));
  size_t n = http_format_head(buf, len, status, "text/html; charset=utf-8",
                              (unsigned long long)body_len, NULL, keep_alive,
                              minor, status == 405);
  *log_bytes = head_only ? 0 : (unsigned long long)body_len;
  if (n == 0) return 0;
  if (!head_only) {
    if (n + (size_t)body_len > len) return 0;
    memcpy(buf + n, body, (size_t)body_len);
    n += (size_t)body_len;
  }
  return n;
}

size_t http_format_log_line(char* buf, size_t len, const char* peer,
                            const char* request, int status,
                            unsigned long long body_bytes) {
  char when[64];
  time_t now = time(NULL);
  struct tm tm;
  localtime_r(&now, &tm);
  strftime(when, sizeof when, "%d/%b/%Y:%H:%M:%S %z", &tm);
  int n;
  if (body_bytes != 0)
    n = snprintf(buf, len, "%s - - [%s] \"%s\" %d %llu\n", peer, when, request,
                 status, body_bytes);
  else
    n = snprintf(buf, len, "%s - - [%s] \"%s\" %d -\n", peer, when, request,
                 status);
  if (n < 0) return 0;
  return (size_t)n < len ? (size_t)n : len - 1;
}
