// Kernel facts about the peer of a connected UNIX socket, for the workload attestation agent.
// Node has no API for SO_PEERCRED or pidfds; this is the smallest native surface that gives them.
#include <napi.h>

#include <cerrno>
#include <cstring>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77  // Linux 6.5+: a pidfd for the peer process as of connect(), immune to pid reuse
#endif

namespace {

Napi::Value ThrowErrno(Napi::Env env, const char* what, int err) {
  Napi::Error e = Napi::Error::New(env, std::string(what) + ": " + std::strerror(err));
  e.Set("errno", Napi::Number::New(env, err));
  e.ThrowAsJavaScriptException();
  return env.Undefined();
}

bool FdArg(const Napi::CallbackInfo& info, int* fd) {
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(info.Env(), "expected a file descriptor").ThrowAsJavaScriptException();
    return false;
  }
  *fd = info[0].As<Napi::Number>().Int32Value();
  return true;
}

// peerCred(fd) -> { pid, uid, gid }: the credentials the kernel recorded when the peer called connect().
Napi::Value PeerCred(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!FdArg(info, &fd)) return env.Undefined();
  struct ucred cred;
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return ThrowErrno(env, "SO_PEERCRED", errno);
  Napi::Object out = Napi::Object::New(env);
  out.Set("pid", Napi::Number::New(env, cred.pid));
  out.Set("uid", Napi::Number::New(env, cred.uid));
  out.Set("gid", Napi::Number::New(env, cred.gid));
  return out;
}

// peerPidfd(fd) -> pidfd | -1 when the kernel lacks SO_PEERPIDFD (then the caller falls back to pidfdOpen).
Napi::Value PeerPidfd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!FdArg(info, &fd)) return env.Undefined();
  int pidfd = -1;
  socklen_t len = sizeof(pidfd);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) != 0) {
    if (errno == ENOPROTOOPT || errno == EINVAL) return Napi::Number::New(env, -1);
    return ThrowErrno(env, "SO_PEERPIDFD", errno);
  }
  return Napi::Number::New(env, pidfd);
}

// pidfdOpen(pid) -> pidfd: pins the process now holding `pid`; it can never refer to a later process.
Napi::Value PidfdOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int pid;
  if (!FdArg(info, &pid)) return env.Undefined();
  long r = syscall(SYS_pidfd_open, pid, 0);
  if (r < 0) return ThrowErrno(env, "pidfd_open", errno);
  return Napi::Number::New(env, static_cast<double>(r));
}

// pidfdAlive(pidfd) -> boolean: pidfd_send_signal(pidfd, 0): false once the pinned process has exited.
Napi::Value PidfdAlive(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int pidfd;
  if (!FdArg(info, &pidfd)) return env.Undefined();
  if (syscall(SYS_pidfd_send_signal, pidfd, 0, nullptr, 0) == 0) return Napi::Boolean::New(env, true);
  if (errno == ESRCH) return Napi::Boolean::New(env, false);
  if (errno == EPERM) return Napi::Boolean::New(env, true);  // alive, just not ours to signal
  return ThrowErrno(env, "pidfd_send_signal", errno);
}

Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!FdArg(info, &fd)) return env.Undefined();
  if (close(fd) != 0) return ThrowErrno(env, "close", errno);
  return env.Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("peerCred", Napi::Function::New(env, PeerCred));
  exports.Set("peerPidfd", Napi::Function::New(env, PeerPidfd));
  exports.Set("pidfdOpen", Napi::Function::New(env, PidfdOpen));
  exports.Set("pidfdAlive", Napi::Function::New(env, PidfdAlive));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd));
  return exports;
}

}  // namespace

NODE_API_MODULE(airlock_peer, Init)
