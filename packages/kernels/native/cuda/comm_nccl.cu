// NCCL collectives for the CUDA backend (built only where nccl.h and libnccl are found; the
// JavaScript side is src/collectives/nccl.ts).
//
// Design. One communicator = one ncclComm_t created non-blocking (so a rank that never joins
// cannot hang the process: JavaScript polls ncclState with a deadline), its own communication
// stream and two events. Each collective (1) records an event on the compute stream and makes
// the communication stream wait for it, so the collective reads what compute wrote before it
// was issued; (2) enqueues the NCCL call on the communication stream; (3) records `done` and
// makes the compute stream wait for it, so later compute sees the result, all without a host
// round trip. Semantics are the TCP transport's: f32/bf16, sum or avg (ncclAvg), in place when
// send and receive are the same buffer (all-reduce, broadcast) or when the send buffer is the
// rank's slice of the receive buffer (all-gather) / the receive buffer the rank's slice of the
// send buffer (reduce-scatter). A watchdog thread per communicator aborts it (ncclCommAbort,
// which makes pending NCCL kernels return) when NCCL reports an asynchronous error (a peer
// died: ncclRemoteError) or when a collective has been pending longer than the timeout, and
// keeps the reason; every later call reports that reason. NVLink multicast is left to the
// environment (NCCL_NVLS_ENABLE=0 is set by the JavaScript side before init).
#include <nccl.h>
#include <napi.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>

#include "../napi/args.h"
#include "common.cuh"

namespace tk {
namespace {

using cuda::stream;

int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct Comm {
  ncclComm_t comm = nullptr;
  cudaStream_t commStream = nullptr;
  cudaEvent_t ready = nullptr;
  cudaEvent_t done = nullptr;
  int device = 0;
  int rank = 0;
  int size = 0;
  int64_t timeoutMs = 300000;
  std::atomic<bool> pending{false};
  std::atomic<int64_t> pendingSince{0};
  std::atomic<bool> aborted{false};
  std::atomic<bool> destroyed{false};
  std::atomic<bool> stopWatchdog{false};
  std::mutex mu;  // NCCL calls on `comm` from the JS thread vs. abort from the watchdog
  std::string reason;
  std::thread watchdog;
};

std::string resultText(ncclResult_t r, ncclComm_t comm) {
  std::string m = ncclGetErrorString(r);
  const char* last = ncclGetLastError(comm);
  if (last && *last) m += std::string(" (") + last + ")";
  return m;
}

// Aborts once, keeping the first reason. Caller must not hold c->mu.
void abortComm(Comm* c, const std::string& why) {
  std::lock_guard<std::mutex> lock(c->mu);
  if (c->aborted.exchange(true) || c->destroyed) return;
  c->reason = why;
  ncclCommAbort(c->comm);
}

void watch(Comm* c) {
  cudaSetDevice(c->device);
  while (!c->stopWatchdog.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (c->aborted.load() || c->destroyed.load()) break;
    ncclResult_t st = ncclSuccess;
    {
      std::lock_guard<std::mutex> lock(c->mu);
      if (c->aborted.load()) break;
      ncclCommGetAsyncError(c->comm, &st);
    }
    if (st != ncclSuccess && st != ncclInProgress) {
      abortComm(c, "NCCL reported " + std::string(ncclGetErrorString(st)) +
                       " on rank " + std::to_string(c->rank) + " (a peer failed or the network broke)");
      break;
    }
    if (c->pending.load()) {
      cudaError_t q = cudaEventQuery(c->done);
      if (q == cudaSuccess) {
        c->pending = false;
      } else if (q == cudaErrorNotReady) {
        if (nowMs() - c->pendingSince.load() > c->timeoutMs) {
          abortComm(c, "a collective was still running after " + std::to_string(c->timeoutMs / 1000) +
                           "s on rank " + std::to_string(c->rank) +
                           " (another rank is hung, dead, or in a different collective)");
          break;
        }
      } else {
        abortComm(c, std::string("CUDA error on the communication stream: ") + cudaGetErrorString(q));
        break;
      }
    }
  }
}

void release(Comm* c) {
  c->stopWatchdog = true;
  if (c->watchdog.joinable()) c->watchdog.join();
  if (!c->aborted && !c->destroyed) {
    // Finalize flushes outstanding work; poll because the communicator is non-blocking.
    ncclCommFinalize(c->comm);
    ncclResult_t st = ncclInProgress;
    int64_t deadline = nowMs() + c->timeoutMs;
    while (st == ncclInProgress && nowMs() < deadline) {
      ncclCommGetAsyncError(c->comm, &st);
      if (st == ncclInProgress) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (st == ncclSuccess) ncclCommDestroy(c->comm);
    else ncclCommAbort(c->comm);
  }
  c->destroyed = true;
  if (c->ready) cudaEventDestroy(c->ready);
  if (c->done) cudaEventDestroy(c->done);
  if (c->commStream) cudaStreamDestroy(c->commStream);
}

void finalizeComm(Napi::Env, Comm* c) {
  if (!c->destroyed) {
    abortComm(c, "communicator garbage-collected without close()");
    release(c);
  }
  delete c;
}

Comm* unwrap(const Napi::CallbackInfo& info, const char* op) {
  if (info.Length() < 1 || !info[0].IsExternal())
    throw Napi::TypeError::New(info.Env(), std::string(op) + ": comm must be an NCCL communicator handle");
  Comm* c = info[0].As<Napi::External<Comm>>().Data();
  if (c->destroyed) throw Napi::Error::New(info.Env(), std::string(op) + ": the communicator was closed");
  return c;
}

Napi::Value wrap(Napi::Env env, Comm* c) {
  return Napi::External<Comm>::New(env, c, finalizeComm);
}

// Creates stream/events and starts the watchdog for a communicator whose init was issued.
void startComm(Comm* c, int64_t timeoutMs) {
  c->timeoutMs = timeoutMs;
  TK_CUDA(cudaGetDevice(&c->device));
  TK_CUDA(cudaStreamCreateWithFlags(&c->commStream, cudaStreamNonBlocking));
  TK_CUDA(cudaEventCreateWithFlags(&c->ready, cudaEventDisableTiming));
  TK_CUDA(cudaEventCreateWithFlags(&c->done, cudaEventDisableTiming));
  c->watchdog = std::thread(watch, c);
}

ncclDataType_t ncclType(const Args& a, const TensorDesc& t, const char* name) {
  a.dtypeIn(t, name, {DType::F32, DType::BF16});
  return t.dtype == DType::F32 ? ncclFloat32 : ncclBfloat16;
}

ncclRedOp_t redOp(const Napi::CallbackInfo& info, size_t i, const Args& a) {
  if (!info[i].IsString()) a.fail("op must be \"sum\" or \"avg\"");
  std::string op = info[i].As<Napi::String>().Utf8Value();
  if (op == "sum") return ncclSum;
  if (op == "avg") return ncclAvg;
  a.fail("op must be \"sum\" or \"avg\", got \"" + op + "\"");
}

// Every collective starts after the compute work issued before it (event on the compute stream,
// waited on by the communication stream). By default later compute also waits for it; with
// `deferWait` it does not, so the collective overlaps whatever compute is issued next (the
// backward of earlier layers) and the caller orders compute after it with ncclJoin.
// With `after` (another communicator), the collective starts after the collectives issued so
// far on `after` instead of after the compute issued so far: a data dependency between two
// groups (hybrid sharding's replica all-reduce of a piece the shard group just reduced).
template <typename F>
void enqueue(const Napi::CallbackInfo& info, Comm* c, const char* op, F&& call, bool deferWait = false,
             Comm* after = nullptr) {
  try {
    std::lock_guard<std::mutex> lock(c->mu);
    if (c->aborted) throw Error(c->reason);
    if (after) {
      TK_CUDA(cudaStreamWaitEvent(c->commStream, after->done, 0));
    } else {
      TK_CUDA(cudaEventRecord(c->ready, stream()));
      TK_CUDA(cudaStreamWaitEvent(c->commStream, c->ready, 0));
    }
    ncclResult_t r = call();
    int64_t deadline = nowMs() + c->timeoutMs;
    while (r == ncclInProgress) {
      if (nowMs() > deadline) throw Error("enqueue still in progress after the timeout");
      std::this_thread::sleep_for(std::chrono::microseconds(100));
      ncclCommGetAsyncError(c->comm, &r);
    }
    if (r != ncclSuccess) throw Error(resultText(r, c->comm));
    TK_CUDA(cudaEventRecord(c->done, c->commStream));
    if (!deferWait) TK_CUDA(cudaStreamWaitEvent(stream(), c->done, 0));
    c->pendingSince = nowMs();
    c->pending = true;
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), std::string(op) + ": " + e.what());
  }
}

Napi::Value Version(const Napi::CallbackInfo& info) {
  int v = 0;
  ncclGetVersion(&v);
  return Napi::Number::New(info.Env(), v);
}

Napi::Value GetUniqueId(const Napi::CallbackInfo& info) {
  ncclUniqueId id;
  ncclResult_t r = ncclGetUniqueId(&id);
  if (r != ncclSuccess)
    throw Napi::Error::New(info.Env(), std::string("ncclGetUniqueId: ") + ncclGetErrorString(r));
  return Napi::Buffer<char>::Copy(info.Env(), id.internal, sizeof(id.internal));
}

Napi::Value CommInitRank(const Napi::CallbackInfo& info) {
  Args a(info, "ncclCommInitRank", 4);
  if (!info[0].IsTypedArray()) a.fail("id must be a Uint8Array of " + std::to_string(NCCL_UNIQUE_ID_BYTES) + " bytes");
  auto bytes = info[0].As<Napi::Uint8Array>();
  if (bytes.ByteLength() != NCCL_UNIQUE_ID_BYTES)
    a.fail("id must be " + std::to_string(NCCL_UNIQUE_ID_BYTES) + " bytes, got " + std::to_string(bytes.ByteLength()));
  int nranks = static_cast<int>(a.integer(1, "nranks", 1, 1 << 20));
  int rank = static_cast<int>(a.integer(2, "rank", 0, nranks - 1));
  int64_t timeoutMs = a.integer(3, "timeoutMs", 1, int64_t(1) << 40);
  ncclUniqueId id;
  std::memcpy(id.internal, bytes.Data(), NCCL_UNIQUE_ID_BYTES);
  auto* c = new Comm();
  c->rank = rank;
  c->size = nranks;
  try {
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    ncclResult_t r = ncclCommInitRankConfig(&c->comm, nranks, id, rank, &config);
    if (r != ncclSuccess && r != ncclInProgress) throw Error(std::string("ncclCommInitRankConfig: ") + ncclGetErrorString(r));
    startComm(c, timeoutMs);
  } catch (const std::exception& e) {
    delete c;
    throw Napi::Error::New(info.Env(), std::string("ncclCommInitRank: ") + e.what());
  }
  return wrap(info.Env(), c);
}

Napi::Value CommSplit(const Napi::CallbackInfo& info) {
  Comm* parent = unwrap(info, "ncclCommSplit");
  Args a(info, "ncclCommSplit", 3);
  int color = static_cast<int>(a.integer(1, "color", 0, (1 << 30)));
  int key = static_cast<int>(a.integer(2, "key", 0, (1 << 30)));
  auto* c = new Comm();
  try {
    std::lock_guard<std::mutex> lock(parent->mu);
    if (parent->aborted) throw Error(parent->reason);
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    // Collective over the parent and non-blocking: JavaScript polls the new communicator's
    // state (ncclState) until it is ready, with the timeout.
    ncclResult_t r = ncclCommSplit(parent->comm, color, key, &c->comm, &config);
    if (r != ncclSuccess && r != ncclInProgress) throw Error(resultText(r, parent->comm));
    c->rank = 0;
    c->size = 0;
    startComm(c, parent->timeoutMs);
  } catch (const std::exception& e) {
    delete c;
    throw Napi::Error::New(info.Env(), std::string("ncclCommSplit: ") + e.what());
  }
  return wrap(info.Env(), c);
}

Napi::Value State(const Napi::CallbackInfo& info) {
  Comm* c = unwrap(info, "ncclState");
  Napi::Env env = info.Env();
  if (c->aborted) return Napi::String::New(env, "aborted: " + c->reason);
  ncclResult_t st = ncclSuccess;
  {
    std::lock_guard<std::mutex> lock(c->mu);
    if (c->aborted) return Napi::String::New(env, "aborted: " + c->reason);
    // Non-blocking init/split (NCCL 2.28 seen on H200s): the handle is written by NCCL's own
    // thread when the communicator is ready, so a null handle means "not yet", never "ready"
    // (asking NCCL about a null handle fails without touching st, which read as ready and sent
    // the first collective a null communicator).
    if (__atomic_load_n(&c->comm, __ATOMIC_ACQUIRE) == nullptr) return Napi::String::New(env, "pending");
    ncclResult_t q = ncclCommGetAsyncError(c->comm, &st);
    if (q != ncclSuccess) st = q;
    if (st == ncclSuccess && c->size == 0) {
      // Split communicators learn their rank and size once initialised.
      ncclCommUserRank(c->comm, &c->rank);
      ncclCommCount(c->comm, &c->size);
    }
  }
  if (st == ncclInProgress) return Napi::String::New(env, "pending");
  if (st != ncclSuccess) return Napi::String::New(env, resultText(st, c->comm));
  cudaError_t q = cudaEventQuery(c->done);
  if (q == cudaErrorNotReady) return Napi::String::New(env, "pending");
  if (q != cudaSuccess) return Napi::String::New(env, std::string("CUDA: ") + cudaGetErrorString(q));
  c->pending = false;
  return Napi::String::New(env, "ready");
}

// send and recv of one dtype and size (all-reduce, broadcast, reduce): in place or disjoint.
struct SameSize {
  TensorDesc send, recv;
  ncclDataType_t type;
  size_t count() const { return static_cast<size_t>(send.numel); }
};
SameSize sameSizeArgs(const Args& a) {
  SameSize r{a.tensor(1, "send"), a.tensor(2, "recv"), ncclFloat32};
  r.type = ncclType(a, r.send, "send");
  a.sameDtype(r.send, "send", r.recv, "recv");
  if (r.send.numel != r.recv.numel) a.fail("send and recv must have the same number of elements");
  a.exactOrNoOverlap(r.send, "send", r.recv, "recv");
  return r;
}

// An optional boolean argument (absent or undefined: false).
bool optionalFlag(const Napi::CallbackInfo& info, size_t i, const Args& a, const char* name) {
  if (info.Length() <= i || info[i].IsUndefined()) return false;
  if (!info[i].IsBoolean()) a.fail(std::string(name) + " must be a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

Napi::Value AllReduce(const Napi::CallbackInfo& info) {
  Comm* c = unwrap(info, "ncclAllReduce");
  Args a(info, "ncclAllReduce", 4);
  auto x = sameSizeArgs(a);
  ncclRedOp_t op = redOp(info, 3, a);
  // Optional: deferWait (see enqueue), after (a communicator handle or undefined).
  bool deferWait = optionalFlag(info, 4, a, "deferWait");
  Comm* after = nullptr;
  if (info.Length() > 5 && !info[5].IsUndefined()) {
    if (!info[5].IsExternal()) a.fail("after must be an NCCL communicator handle");
    after = info[5].As<Napi::External<Comm>>().Data();
    if (after == c) a.fail("after must be another communicator");
    if (after->destroyed) a.fail("after: the communicator was closed");
  }
  enqueue(
      info, c, "ncclAllReduce",
      [&] {
        return ncclAllReduce(x.send.data, x.recv.data, x.count(), x.type, op, c->comm, c->commStream);
      },
      deferWait, after);
  return info.Env().Undefined();
}

Napi::Value ReduceScatter(const Napi::CallbackInfo& info) {
  Comm* c = unwrap(info, "ncclReduceScatter");
  Args a(info, "ncclReduceScatter", 4);
  auto send = a.tensor(1, "send"), recv = a.tensor(2, "recv");
  ncclDataType_t t = ncclType(a, send, "send");
  a.sameDtype(send, "send", recv, "recv");
  if (send.numel != recv.numel * c->size)
    a.failRange("send has " + std::to_string(send.numel) + " elements, expected size x recv = " +
                std::to_string(c->size) + " x " + std::to_string(recv.numel));
  // In place only as NCCL allows: recv = send + rank * recvcount.
  const char* s0 = static_cast<const char*>(send.data);
  if (recv.data != s0 + static_cast<size_t>(c->rank) * recv.bytes()) a.noOverlap(send, "send", recv, "recv");
  ncclRedOp_t op = redOp(info, 3, a);
  enqueue(info, c, "ncclReduceScatter", [&] {
    return ncclReduceScatter(send.data, recv.data, static_cast<size_t>(recv.numel), t, op, c->comm, c->commStream);
  });
  return info.Env().Undefined();
}

Napi::Value AllGather(const Napi::CallbackInfo& info) {
  Comm* c = unwrap(info, "ncclAllGather");
  Args a(info, "ncclAllGather", 3);
  auto send = a.tensor(1, "send"), recv = a.tensor(2, "recv");
  ncclDataType_t t = ncclType(a, send, "send");
  a.sameDtype(send, "send", recv, "recv");
  if (recv.numel != send.numel * c->size)
    a.failRange("recv has " + std::to_string(recv.numel) + " elements, expected size x send = " +
                std::to_string(c->size) + " x " + std::to_string(send.numel));
  const char* r0 = static_cast<const char*>(recv.data);
  if (send.data != r0 + static_cast<size_t>(c->rank) * send.bytes()) a.noOverlap(send, "send", recv, "recv");
  enqueue(info, c, "ncclAllGather", [&] {
    return ncclAllGather(send.data, recv.data, static_cast<size_t>(send.numel), t, c->comm, c->commStream);
  });
  return info.Env().Undefined();
}

Napi::Value Broadcast(const Napi::CallbackInfo& info) {
  Comm* c = unwrap(info, "ncclBroadcast");
  Args a(info, "ncclBroadcast", 4);
  auto x = sameSizeArgs(a);
  int root = static_cast<int>(a.integer(3, "root", 0, c->size - 1));
  enqueue(info, c, "ncclBroadcast", [&] {
    return ncclBroadcast(x.send.data, x.recv.data, x.count(), x.type, root, c->comm, c->commStream);
  });
  return info.Env().Undefined();
}

Napi::Value Reduce(const Napi::CallbackInfo& info) {
  Comm* c = unwrap(info, "ncclReduce");
  Args a(info, "ncclReduce", 6);
  auto x = sameSizeArgs(a);
  ncclRedOp_t op = redOp(info, 3, a);
  int root = static_cast<int>(a.integer(4, "root", 0, c->size - 1));
  bool deferWait = optionalFlag(info, 5, a, "deferWait");
  enqueue(
      info, c, "ncclReduce",
      [&] { return ncclReduce(x.send.data, x.recv.data, x.count(), x.type, op, root, c->comm, c->commStream); },
      deferWait);
  return info.Env().Undefined();
}

// Orders compute issued from now on after every collective enqueued on this communicator
// (the last `done` event marks the end of the communication stream's queue).
Napi::Value Join(const Napi::CallbackInfo& info) {
  Comm* c = unwrap(info, "ncclJoin");
  try {
    std::lock_guard<std::mutex> lock(c->mu);
    if (c->aborted) throw Error(c->reason);
    TK_CUDA(cudaStreamWaitEvent(stream(), c->done, 0));
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), std::string("ncclJoin: ") + e.what());
  }
  return info.Env().Undefined();
}

Napi::Value Abort(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsExternal()) return info.Env().Undefined();
  Comm* c = info[0].As<Napi::External<Comm>>().Data();
  if (c->destroyed) return info.Env().Undefined();
  std::string why = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "aborted";
  abortComm(c, why);
  release(c);
  return info.Env().Undefined();
}

Napi::Value Destroy(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsExternal()) return info.Env().Undefined();
  Comm* c = info[0].As<Napi::External<Comm>>().Data();
  if (!c->destroyed) release(c);
  return info.Env().Undefined();
}

}  // namespace

void registerNccl(Napi::Env env, Napi::Object exports) {
  exports.Set("ncclVersion", Napi::Function::New(env, Version));
  exports.Set("ncclGetUniqueId", Napi::Function::New(env, GetUniqueId));
  exports.Set("ncclCommInitRank", Napi::Function::New(env, CommInitRank));
  exports.Set("ncclCommSplit", Napi::Function::New(env, CommSplit));
  exports.Set("ncclState", Napi::Function::New(env, State));
  exports.Set("ncclAllReduce", Napi::Function::New(env, AllReduce));
  exports.Set("ncclReduceScatter", Napi::Function::New(env, ReduceScatter));
  exports.Set("ncclAllGather", Napi::Function::New(env, AllGather));
  exports.Set("ncclBroadcast", Napi::Function::New(env, Broadcast));
  exports.Set("ncclReduce", Napi::Function::New(env, Reduce));
  exports.Set("ncclJoin", Napi::Function::New(env, Join));
  exports.Set("ncclAbort", Napi::Function::New(env, Abort));
  exports.Set("ncclDestroy", Napi::Function::New(env, Destroy));
}

}  // namespace tk
