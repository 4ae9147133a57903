/*
 * netmon: the runner's network monitor. Runs a command under a seccomp filter whose user-notification listener
 * this process holds, and writes one JSON line per network attempt / program execution to an events file.
 *
 *   netmon --events FILE -- COMMAND [ARG...]
 *
 * Only these syscalls ever leave the kernel's fast path (everything else is SECCOMP_RET_ALLOW, no stop):
 * connect, sendto with a destination, sendmsg, sendmmsg (the sockaddr is read from /proc/PID/mem), execve and
 * execveat (the toolchain list), io_uring_setup (refused with EPERM and recorded: io_uring network operations
 * would bypass seccomp). Every monitored call is answered SECCOMP_USER_NOTIF_FLAG_CONTINUE: netmon is evidence,
 * not the enforcement. Isolation is the sandbox's network namespace (bwrap --unshare-net). The usual seccomp-notify
 * TOCTOU (another thread rewrites the sockaddr after netmon read it) therefore cannot open a path out: it can only
 * hide an attempt that fails anyway. The monitor's job is to turn attempts into a hermeticity verdict.
 *
 * The filter has to be installed by the process that then execs the sandbox, before the exec: a forked child sets
 * PR_SET_NO_NEW_PRIVS, installs the filter with SECCOMP_FILTER_FLAG_NEW_LISTENER, tells the parent the listener's
 * fd number over a pipe and waits; the parent takes the fd with pidfd_getfd (not SCM_RIGHTS: the child's own
 * sendmsg would already be stopped by the filter, waiting for a listener nobody holds yet), then lets the child
 * exec. The child dies with netmon (PR_SET_PDEATHSIG), and netmon exits with the child's status (or its signal).
 *
 * Exit 125 and a line on stderr when netmon itself cannot run (usage, seccomp unavailable).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#else
#error "netmon: unsupported architecture"
#endif

#ifndef __NR_io_uring_setup
#define __NR_io_uring_setup 425
#endif
#ifndef __NR_pidfd_open
#define __NR_pidfd_open 434
#endif
#ifndef __NR_pidfd_getfd
#define __NR_pidfd_getfd 438
#endif
#ifndef __NR_openat2
#define __NR_openat2 437
#endif

#define FAIL_EXIT 125

static FILE *events;

static void die(const char *what) {
  fprintf(stderr, "netmon: %s: %s\n", what, strerror(errno));
  exit(FAIL_EXIT);
}

/* ---------- the filter ---------- */

#define ARG_LO(n) (offsetof(struct seccomp_data, args) + 8 * (n))
#define ARG_HI(n) (offsetof(struct seccomp_data, args) + 8 * (n) + 4)
#define LD(off) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (off))
#define JEQ(k, t, f) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (k), (t), (f))
#define RET(v) BPF_STMT(BPF_RET | BPF_K, (v))

static int install_filter(void) {
  struct sock_filter f[] = {
      /* 0 */ LD(offsetof(struct seccomp_data, arch)),
      /* 1 */ JEQ(NATIVE_ARCH, 0, 16), /* → 18: foreign ABI */
      /* 2 */ LD(offsetof(struct seccomp_data, nr)),
#if defined(__x86_64__)
      /* 3 */ BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 13, 0), /* x32 ABI → 17 */
#else
      /* 3 */ JEQ(0xffffffff, 13, 0),
#endif
      /* 4 */ JEQ(__NR_connect, 11, 0),
      /* 5 */ JEQ(__NR_sendmsg, 10, 0),
      /* 6 */ JEQ(__NR_sendmmsg, 9, 0),
      /* 7 */ JEQ(__NR_execve, 8, 0),
      /* 8 */ JEQ(__NR_execveat, 7, 0),
      /* 9 */ JEQ(__NR_io_uring_setup, 6, 0),
      /* 10 */ JEQ(__NR_sendto, 0, 4), /* → 15 */
      /* sendto(fd, buf, len, flags, dest_addr, addrlen): a NULL dest is a connected socket, already seen. */
      /* 11 */ LD(ARG_LO(4)),
      /* 12 */ JEQ(0, 0, 3), /* → 16 */
      /* 13 */ LD(ARG_HI(4)),
      /* 14 */ JEQ(0, 0, 1), /* → 16 */
      /* 15 */ RET(SECCOMP_RET_ALLOW),
      /* 16 */ RET(SECCOMP_RET_USER_NOTIF),
      /* 17 */ RET(SECCOMP_RET_ERRNO | ENOSYS),
#if defined(__x86_64__)
      /* 18: i386 ABI. netmon reads 64-bit layouts only, so network syscalls and io_uring are refused there. */
      LD(offsetof(struct seccomp_data, nr)),
      JEQ(102 /* socketcall */, 7, 0),
      JEQ(362 /* connect */, 6, 0),
      JEQ(369 /* sendto */, 5, 0),
      JEQ(370 /* sendmsg */, 4, 0),
      JEQ(345 /* sendmmsg */, 3, 0),
      JEQ(425 /* io_uring_setup */, 2, 0),
      RET(SECCOMP_RET_ALLOW),
      RET(SECCOMP_RET_ALLOW),
      RET(SECCOMP_RET_ERRNO | EPERM),
#else
      /* 18: a compat ABI netmon cannot read: refuse it. */
      RET(SECCOMP_RET_ERRNO | ENOSYS),
#endif
  };
  struct sock_fprog prog = {.len = sizeof(f) / sizeof(f[0]), .filter = f};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
  return (int)syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
}

/* ---------- reading the tracee ---------- */

static int read_mem(pid_t pid, uint64_t addr, void *buf, size_t len) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/mem", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = pread(fd, buf, len, (off_t)addr);
  close(fd);
  return n == (ssize_t)len ? 0 : -1;
}

/* A NUL-terminated string from the tracee, read in small steps (a page boundary may end the mapping). */
static int read_string(pid_t pid, uint64_t addr, char *buf, size_t cap) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/mem", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t got = 0;
  while (got + 1 < cap) {
    size_t want = 256 - ((addr + got) % 256);
    if (want > cap - 1 - got) want = cap - 1 - got;
    ssize_t n = pread(fd, buf + got, want, (off_t)(addr + got));
    if (n <= 0) break;
    void *nul = memchr(buf + got, 0, (size_t)n);
    if (nul) {
      close(fd);
      return 0;
    }
    got += (size_t)n;
  }
  close(fd);
  buf[got] = 0;
  return got > 0 ? 0 : -1;
}

static pid_t tgid_of(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", pid);
  FILE *f = fopen(path, "re");
  if (!f) return pid;
  pid_t tgid = pid;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "Tgid: %d", &tgid) == 1) break;
  fclose(f);
  return tgid;
}

/* SO_TYPE of the tracee's socket fd: 1 stream, 0 other, -1 unknown. */
static int is_stream(pid_t tgid, int fd) {
  int pidfd = (int)syscall(__NR_pidfd_open, tgid, 0);
  if (pidfd < 0) return -1;
  int sock = (int)syscall(__NR_pidfd_getfd, pidfd, fd, 0);
  close(pidfd);
  if (sock < 0) return -1;
  int type = 0;
  socklen_t len = sizeof type;
  int r = getsockopt(sock, SOL_SOCKET, SO_TYPE, &type, &len);
  close(sock);
  return r != 0 ? -1 : type == SOCK_STREAM;
}

/* Whether a TCP socket listens on `port` in the tracee's network namespace (/proc/PID/net/tcp{,6}). */
static int tcp_listening(pid_t pid, unsigned port) {
  const char *tables[] = {"tcp", "tcp6"};
  for (int t = 0; t < 2; t++) {
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/%d/net/%s", pid, tables[t]);
    FILE *f = fopen(path, "re");
    if (!f) continue;
    while (fgets(line, sizeof line, f)) {
      char local[128];
      unsigned st = 0;
      if (sscanf(line, " %*d: %127s %*s %x", local, &st) != 2) continue;
      char *colon = strrchr(local, ':');
      if (colon && st == 0x0A && strtoul(colon + 1, NULL, 16) == port) {
        fclose(f);
        return 1;
      }
    }
    fclose(f);
  }
  return 0;
}

/* Whether the tracee's network namespace has no interface but lo (then no non-loopback address is routable). */
static int only_loopback(pid_t pid) {
  char path[64], line[512];
  snprintf(path, sizeof path, "/proc/%d/net/dev", pid);
  FILE *f = fopen(path, "re");
  if (!f) return -1;
  int only = 1;
  while (fgets(line, sizeof line, f)) {
    char name[64];
    if (!strchr(line, ':') || sscanf(line, " %63[^:]:", name) != 1) continue;
    if (strcmp(name, "lo") != 0) only = 0;
  }
  fclose(f);
  return only;
}

/* ---------- output ---------- */

static void json_str(const char *s) {
  fputc('"', events);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\')
      fprintf(events, "\\%c", *p);
    else if (*p < 0x20 || *p == 0x7f)
      fprintf(events, "\\u%04x", *p);
    else
      fputc(*p, events);
  }
  fputc('"', events);
}

static void exe_of(pid_t pid, char *buf, size_t cap) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/exe", pid);
  ssize_t n = readlink(path, buf, cap - 1);
  buf[n > 0 ? n : 0] = 0;
}

/* One network event: the destination and the facts the runner classifies it by. */
static void emit_net(const struct seccomp_notif *n, const char *call, const struct sockaddr_storage *sa, int fd) {
  char addr[INET6_ADDRSTRLEN] = "";
  unsigned port;
  int loopback;
  if (sa->ss_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    inet_ntop(AF_INET, &in->sin_addr, addr, sizeof addr);
    port = ntohs(in->sin_port);
    loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127 || in->sin_addr.s_addr == 0;
  } else if (sa->ss_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    inet_ntop(AF_INET6, &in6->sin6_addr, addr, sizeof addr);
    port = ntohs(in6->sin6_port);
    const struct in6_addr *a = &in6->sin6_addr;
    loopback = IN6_IS_ADDR_LOOPBACK(a) || IN6_IS_ADDR_UNSPECIFIED(a) ||
               (IN6_IS_ADDR_V4MAPPED(a) && (a->s6_addr[12] == 127 || (a->s6_addr32[3] == 0)));
  } else {
    return; /* AF_UNIX, AF_NETLINK, AF_UNSPEC: never a way out */
  }
  pid_t pid = (pid_t)n->pid, tgid = tgid_of(pid);
  char exe[4096];
  exe_of(pid, exe, sizeof exe);
  fprintf(events, "{\"ev\":\"net\",\"call\":\"%s\",\"pid\":%d,\"tgid\":%d,\"address\":", call, pid, tgid);
  json_str(addr);
  fprintf(events, ",\"port\":%u,\"loopback\":%s", port, loopback ? "true" : "false");
  if (loopback && strcmp(call, "connect") == 0) {
    int stream = is_stream(tgid, fd);
    fprintf(events, ",\"stream\":%s", stream < 0 ? "null" : stream ? "true" : "false");
    if (stream != 0) fprintf(events, ",\"listening\":%s", tcp_listening(pid, port) ? "true" : "false");
  }
  if (!loopback) {
    int only = only_loopback(pid);
    fprintf(events, ",\"onlyLoopback\":%s", only < 0 ? "null" : only ? "true" : "false");
  }
  fprintf(events, ",\"exe\":");
  json_str(exe);
  fputs("}\n", events);
  fflush(events);
}

static int read_sockaddr(pid_t pid, uint64_t addr, uint64_t len, struct sockaddr_storage *sa) {
  memset(sa, 0, sizeof *sa);
  if (addr == 0 || len < sizeof(sa_family_t)) return -1;
  if (len > sizeof *sa) len = sizeof *sa;
  return read_mem(pid, addr, sa, (size_t)len);
}

static void on_msghdr(const struct seccomp_notif *n, const char *call, uint64_t at) {
  struct msghdr m;
  struct sockaddr_storage sa;
  if (read_mem((pid_t)n->pid, at, &m, sizeof m) != 0) return;
  if (read_sockaddr((pid_t)n->pid, (uint64_t)(uintptr_t)m.msg_name, m.msg_namelen, &sa) == 0)
    emit_net(n, call, &sa, (int)n->data.args[0]);
}

static void on_exec(const struct seccomp_notif *n, int dirfd_arg, uint64_t path_addr) {
  pid_t pid = (pid_t)n->pid;
  char path[4096], base[64];
  if (read_string(pid, path_addr, path, sizeof path) != 0 || path[0] == 0) return;
  /* Does the program exist in the sandbox's view? execvp's PATH search tries directories that lack it. */
  if (path[0] == '/') snprintf(base, sizeof base, "/proc/%d/root", pid);
  else if (dirfd_arg == AT_FDCWD) snprintf(base, sizeof base, "/proc/%d/cwd", pid);
  else snprintf(base, sizeof base, "/proc/%d/fd/%d", pid, dirfd_arg);
  int found = 0, dir = open(base, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    struct open_how how = {.flags = O_PATH | O_CLOEXEC, .resolve = path[0] == '/' ? RESOLVE_IN_ROOT : 0};
    int fd = (int)syscall(__NR_openat2, dir, path[0] == '/' ? path + 1 : path, &how, sizeof how);
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111)) found = 1;
    if (fd >= 0) close(fd);
    close(dir);
  }
  fprintf(events, "{\"ev\":\"exec\",\"pid\":%d,\"path\":", pid);
  json_str(path);
  fprintf(events, ",\"found\":%s}\n", found ? "true" : "false");
}

/* ---------- the supervisor loop ---------- */

static pid_t child_pid;

static void handle(int listener, struct seccomp_notif *n, struct seccomp_notif_resp *resp, size_t nsz, size_t rsz) {
  memset(n, 0, nsz);
  if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, n) != 0) return; /* ENOENT: the tracee died meanwhile */
  memset(resp, 0, rsz);
  resp->id = n->id;
  resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
  const __u64 *a = n->data.args;
  struct sockaddr_storage sa;
  int nr = n->data.nr;
  if (nr == __NR_connect) {
    if (read_sockaddr((pid_t)n->pid, a[1], a[2], &sa) == 0) emit_net(n, "connect", &sa, (int)a[0]);
  } else if (nr == __NR_sendto) {
    if (read_sockaddr((pid_t)n->pid, a[4], a[5], &sa) == 0) emit_net(n, "sendto", &sa, (int)a[0]);
  } else if (nr == __NR_sendmsg) {
    on_msghdr(n, "sendmsg", a[1]);
  } else if (nr == __NR_sendmmsg) {
    /* struct mmsghdr = { struct msghdr; unsigned int msg_len; } padded: the first few entries are enough. */
    for (uint64_t i = 0; i < a[2] && i < 8; i++) on_msghdr(n, "sendmmsg", a[1] + i * sizeof(struct mmsghdr));
  } else if (nr == __NR_execve) {
    if ((pid_t)n->pid != child_pid) on_exec(n, AT_FDCWD, a[0]);
  } else if (nr == __NR_execveat) {
    if ((pid_t)n->pid != child_pid) on_exec(n, (int)a[0], a[1]);
  } else if (nr == __NR_io_uring_setup) {
    fprintf(events, "{\"ev\":\"refused\",\"call\":\"io_uring_setup\",\"pid\":%d}\n", (int)n->pid);
    fflush(events);
    resp->flags = 0;
    resp->error = -EPERM;
  }
  ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, resp); /* ENOENT: the tracee died meanwhile */
}

static int supervise(int listener, int pidfd) {
  struct seccomp_notif_sizes sizes;
  if (syscall(__NR_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) != 0) die("SECCOMP_GET_NOTIF_SIZES");
  size_t nsz = sizes.seccomp_notif > sizeof(struct seccomp_notif) ? sizes.seccomp_notif : sizeof(struct seccomp_notif);
  size_t rsz = sizes.seccomp_notif_resp > sizeof(struct seccomp_notif_resp) ? sizes.seccomp_notif_resp
                                                                             : sizeof(struct seccomp_notif_resp);
  struct seccomp_notif *n = calloc(1, nsz);
  struct seccomp_notif_resp *resp = calloc(1, rsz);
  if (!n || !resp) die("calloc");
  int status = 0, exited = 0;
  for (;;) {
    struct pollfd p[2] = {{.fd = listener, .events = POLLIN}, {.fd = exited ? -1 : pidfd, .events = POLLIN}};
    /* After the child exits, serve what is left until no task uses the filter (POLLHUP) or all is quiet. */
    int r = poll(p, 2, exited ? 200 : -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      die("poll");
    }
    if (p[0].revents & POLLIN) handle(listener, n, resp, nsz, rsz);
    if (p[1].revents & POLLIN) {
      if (waitpid(child_pid, &status, 0) == child_pid) exited = 1;
    }
    if (exited && (r == 0 || (p[0].revents & (POLLHUP | POLLERR)))) break;
  }
  fflush(events);
  return status;
}

static void exit_like(int status) {
  if (WIFEXITED(status)) exit(WEXITSTATUS(status));
  int sig = WTERMSIG(status);
  struct rlimit none = {0, 0};
  setrlimit(RLIMIT_CORE, &none);
  signal(sig, SIG_DFL);
  sigset_t all;
  sigemptyset(&all);
  sigaddset(&all, sig);
  sigprocmask(SIG_UNBLOCK, &all, NULL);
  raise(sig);
  exit(128 + sig);
}

static void run_child(int tell, int wait_fd, pid_t parent, char **argv) {
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || getppid() != parent) _exit(FAIL_EXIT);
  int listener = install_filter();
  if (listener < 0) {
    fprintf(stderr, "netmon: cannot install the seccomp filter: %s\n", strerror(errno));
    _exit(FAIL_EXIT);
  }
  if (write(tell, &listener, sizeof listener) != sizeof listener) _exit(FAIL_EXIT);
  char ok;
  if (read(wait_fd, &ok, 1) != 1) _exit(FAIL_EXIT); /* the parent holds the listener now */
  close(listener);
  close(tell);
  close(wait_fd);
  execvp(argv[0], argv);
  fprintf(stderr, "netmon: cannot run %s: %s\n", argv[0], strerror(errno));
  _exit(127);
}

int main(int argc, char **argv) {
  const char *events_path = NULL;
  int i = 1;
  for (; i < argc; i++) {
    if (strcmp(argv[i], "--events") == 0 && i + 1 < argc) events_path = argv[++i];
    else if (strcmp(argv[i], "--") == 0) {
      i++;
      break;
    } else {
      fprintf(stderr, "netmon: unknown argument %s\nusage: netmon --events FILE -- COMMAND [ARG...]\n", argv[i]);
      return FAIL_EXIT;
    }
  }
  if (!events_path || i >= argc) {
    fprintf(stderr, "usage: netmon --events FILE -- COMMAND [ARG...]\n");
    return FAIL_EXIT;
  }
  int efd = open(events_path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (efd < 0 || !(events = fdopen(efd, "w"))) die(events_path);
  setvbuf(events, NULL, _IOFBF, 1 << 16);
  int to_parent[2], to_child[2];
  if (pipe2(to_parent, O_CLOEXEC) != 0 || pipe2(to_child, O_CLOEXEC) != 0) die("pipe");
  pid_t self = getpid();
  child_pid = fork();
  if (child_pid < 0) die("fork");
  if (child_pid == 0) run_child(to_parent[1], to_child[0], self, argv + i);
  close(to_parent[1]);
  close(to_child[0]);
  int pidfd = (int)syscall(__NR_pidfd_open, child_pid, 0);
  if (pidfd < 0) die("pidfd_open");
  int remote = -1, listener = -1;
  if (read(to_parent[0], &remote, sizeof remote) == sizeof remote)
    listener = (int)syscall(__NR_pidfd_getfd, pidfd, remote, 0);
  if (listener < 0) {
    /* The child could not install the filter (it said why) or we cannot take the listener: never run unmonitored. */
    int err = errno;
    kill(child_pid, SIGKILL);
    int st;
    waitpid(child_pid, &st, 0);
    if (remote >= 0) fprintf(stderr, "netmon: cannot take the seccomp listener: %s\n", strerror(err));
    return FAIL_EXIT;
  }
  if (write(to_child[1], "1", 1) != 1) die("write");
  close(to_child[1]);
  close(to_parent[0]);
  exit_like(supervise(listener, pidfd));
}
