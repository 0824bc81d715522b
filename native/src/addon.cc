// addon.cc - the Node-API face of the engine.
//
// The TypeScript wrapper (src/engine.ts) owns the public API and validates
// every option with a message that names it; this file only keeps invariant
// guards.  Each NativeEngine is tied to the environment (main thread or
// worker) that made it: an environment cleanup hook stops and joins its I/O
// threads, so process exit and worker.terminate() never leave a thread
// running or a socket open.  C++ exceptions are off; errors become JS errors.
#include <napi.h>

#include <memory>
#include <string>

#include "backend.h"
#include "engine.h"
#include "layout.h"
#include "protocol_check.h"

namespace ww {
namespace {

bool parse_backend(const std::string& name, BackendId* out) {
  if (name == "epoll") *out = BackendId::kEpoll;
  else if (name == "io_uring") *out = BackendId::kIoUring;
  else if (name == "iocp") *out = BackendId::kIocp;
  else return false;
  return true;
}

uint32_t get_u32(const Napi::Object& o, const char* key, uint32_t def) {
  Napi::Value v = o.Get(key);
  return v.IsNumber() ? v.As<Napi::Number>().Uint32Value() : def;
}

class NativeEngine : public Napi::ObjectWrap<NativeEngine> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "NativeEngine",
                       {
                           InstanceMethod<&NativeEngine::Listen>("listen"),
                           InstanceMethod<&NativeEngine::Submit>("submit"),
                           InstanceMethod<&NativeEngine::Resume>("resume"),
                           InstanceMethod<&NativeEngine::TakeLarge>("takeLarge"),
                           InstanceMethod<&NativeEngine::PendingBytes>("pendingBytes"),
                           InstanceMethod<&NativeEngine::Shutdown>("shutdown"),
                           InstanceMethod<&NativeEngine::Stop>("stop"),
                           InstanceMethod<&NativeEngine::Block>("block"),
                           InstanceMethod<&NativeEngine::LiveTableOffset>("liveTableOffset"),
                           InstanceMethod<&NativeEngine::StatsOffset>("statsOffset"),
                       });
  }

  // new NativeEngine(options, onWake)
  NativeEngine(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeEngine>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsFunction()) {
      Napi::TypeError::New(env, "NativeEngine(options, onWake): bad arguments")
          .ThrowAsJavaScriptException();
      return;
    }
    Napi::Object o = info[0].As<Napi::Object>();
    EngineOptions opts;
    Napi::Value b = o.Get("backend");
    if (!b.IsString() || !parse_backend(b.As<Napi::String>().Utf8Value(), &opts.backend)) {
      Napi::TypeError::New(env, "NativeEngine: options.backend must be epoll, io_uring or iocp")
          .ThrowAsJavaScriptException();
      return;
    }
    opts.io_threads = get_u32(o, "ioThreads", 1);
    opts.ring_bytes = get_u32(o, "ringBytes", opts.ring_bytes);
    opts.max_frame_bytes = get_u32(o, "maxFrameBytes", opts.max_frame_bytes);
    opts.send_high_water = get_u32(o, "sendHighWaterBytes", uint32_t(opts.send_high_water));
    opts.send_low_water = get_u32(o, "sendLowWaterBytes", uint32_t(opts.send_low_water));
    opts.recv_buffer_bytes = get_u32(o, "recvBufferBytes", opts.recv_buffer_bytes);
    opts.recv_buffer_count = get_u32(o, "recvBufferCount", opts.recv_buffer_count);
    opts.backlog = int(get_u32(o, "backlog", uint32_t(opts.backlog)));
    opts.protocol_check = o.Get("protocolCheck").ToBoolean().Value();
    opts.max_connections = get_u32(o, "maxConnections", 0);
    opts.max_per_address = get_u32(o, "maxConnectionsPerAddress", 0);
    opts.idle_timeout_ms = get_u32(o, "idleTimeoutMs", 0);
    opts.flush_timeout_ms = get_u32(o, "flushTimeoutMs", 0);
    opts.keepalive_ms = get_u32(o, "keepAliveMs", 0);
    opts.hold_new = o.Get("holdNew").ToBoolean().Value();
    for (const char* key : {"refuseFrame", "idleFrame", "tooLargeFrame"}) {
      Napi::Value v = o.Get(key);
      if (!v.IsTypedArray()) continue;
      Napi::Uint8Array a = v.As<Napi::Uint8Array>();
      const std::string k(key);
      std::vector<uint8_t>& dst = k == "refuseFrame" ? opts.refuse_frame : k == "idleFrame" ? opts.idle_frame : opts.too_large_frame;
      dst.assign(a.Data(), a.Data() + a.ByteLength());
    }
    // Invariant guards (TS validates with friendlier messages first).
    if (opts.io_threads < 1 || opts.io_threads > kMaxIoThreads ||
        opts.ring_bytes < kMinRingBytes || opts.ring_bytes > kMaxRingBytes ||
        (opts.ring_bytes & (opts.ring_bytes - 1)) != 0 || opts.recv_buffer_bytes < 256 ||
        opts.recv_buffer_count < 1 || opts.recv_buffer_count > 65535) {
      Napi::RangeError::New(env, "NativeEngine: option out of range").ThrowAsJavaScriptException();
      return;
    }

    // A raw thread-safe function with our own call_js: node-addon-api's
    // default turns "this environment is terminating" into a fatal error.
    napi_value name;
    napi_create_string_utf8(env, "whirlwind", NAPI_AUTO_LENGTH, &name);
    if (napi_create_threadsafe_function(env, info[1], nullptr, name, 0, 1, nullptr, nullptr, nullptr,
                                        &NativeEngine::CallJs, &tsfn_) != napi_ok) {
      Napi::Error::New(env, "cannot create the wake-up function").ThrowAsJavaScriptException();
      return;
    }
    napi_unref_threadsafe_function(env, tsfn_);
    engine_.reset(new Engine(opts, &NativeEngine::WakeJs, this));
    std::string err;
    if (!engine_->start(&err)) {
      engine_.reset();
      napi_release_threadsafe_function(tsfn_, napi_tsfn_release);
      released_ = true;
      Napi::Error::New(env, err).ThrowAsJavaScriptException();
      return;
    }
    napi_add_env_cleanup_hook(env, &NativeEngine::Cleanup, this);
    hooked_ = true;
  }

  ~NativeEngine() override { StopAll(); }

 private:
  static void WakeJs(void* self) {
    napi_call_threadsafe_function(static_cast<NativeEngine*>(self)->tsfn_, nullptr,
                                  napi_tsfn_nonblocking);
  }

  // Runs on the JS thread.  If the environment is going away (worker
  // terminate, exit) the call fails and there is nothing to do.  If the
  // JS callback throws, the exception stays pending and Node reports it as
  // uncaught, as for any event handler.
  static void CallJs(napi_env env, napi_value cb, void*, void*) {
    if (env == nullptr || cb == nullptr) return;
    napi_value undefined;
    if (napi_get_undefined(env, &undefined) != napi_ok) return;
    napi_call_function(env, undefined, cb, 0, nullptr, nullptr);
  }

  static void Cleanup(void* self) {
    NativeEngine* e = static_cast<NativeEngine*>(self);
    e->hooked_ = false;  // Node removes the hook as it runs it
    e->StopAll();
  }

  void StopAll() {
    if (engine_) engine_->stop();  // joins every I/O thread
    if (!released_) {
      released_ = true;
      napi_release_threadsafe_function(tsfn_, napi_tsfn_release);
    }
    if (hooked_) {
      hooked_ = false;
      napi_remove_env_cleanup_hook(Env(), &NativeEngine::Cleanup, this);
    }
  }

  bool Alive(Napi::Env env) {
    if (engine_ && !released_) return true;
    Napi::Error::New(env, "the server is closed").ThrowAsJavaScriptException();
    return false;
  }

  // listen(host, port, ipv6Only) -> { port, family, address }
  Napi::Value Listen(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Alive(env)) return env.Undefined();
    std::string host = info[0].As<Napi::String>().Utf8Value();
    int port = int(info[1].As<Napi::Number>().Int32Value());
    bool v6only = info[2].ToBoolean().Value();
    ListenResult r;
    std::string err;
    if (!engine_->listen(host, port, v6only, &r, &err)) {
      Napi::Error::New(env, err).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    napi_ref_threadsafe_function(env, tsfn_);  // a listening server keeps the process alive, like net.Server
    Napi::Object out = Napi::Object::New(env);
    out.Set("port", r.port);
    out.Set("family", r.family);
    out.Set("address", r.address);
    return out;
  }

  // submit(buffer, length) -> number of entries whose token was live
  Napi::Value Submit(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Alive(env)) return env.Undefined();
    Napi::Uint8Array buf = info[0].As<Napi::Uint8Array>();
    size_t len = info[1].As<Napi::Number>().Uint32Value();
    if (len > buf.ByteLength()) len = buf.ByteLength();
    std::string err;
    long n = engine_->submit(buf.Data(), len, &err);
    if (n < 0) {
      Napi::Error::New(env, err).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    return Napi::Number::New(env, double(n));
  }

  Napi::Value Resume(const Napi::CallbackInfo& info) {
    if (engine_) engine_->resume(info[0].As<Napi::Number>().Uint32Value());
    return info.Env().Undefined();
  }

  Napi::Value TakeLarge(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint8_t* data = nullptr;
    uint32_t len = 0;
    uint64_t id = uint64_t(info[0].As<Napi::Number>().DoubleValue());
    if (!engine_ || !engine_->take_large(id, &data, &len)) return env.Null();
    return Napi::Buffer<uint8_t>::New(env, data, len, [](Napi::Env, uint8_t* d) { std::free(d); });
  }

  Napi::Value PendingBytes(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!engine_) return Napi::Number::New(env, -1);
    uint64_t tok = uint64_t(info[0].As<Napi::Number>().DoubleValue());
    return Napi::Number::New(env, double(engine_->pending_bytes(tok)));
  }

  Napi::Value Shutdown(const Napi::CallbackInfo& info) {
    if (engine_ && !released_) engine_->shutdown();
    return info.Env().Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    StopAll();
    return info.Env().Undefined();
  }

  // The completion block as an ArrayBuffer over native memory (no copy).  The
  // memory stays valid while this ArrayBuffer lives, even after stop().
  Napi::Value Block(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!engine_) return env.Null();
    auto* keep = new std::shared_ptr<SharedBlock>(engine_->block());
    return Napi::ArrayBuffer::New(
        env, (*keep)->data, (*keep)->size,
        [](Napi::Env, void*, std::shared_ptr<SharedBlock>* k) { delete k; }, keep);
  }

  Napi::Value LiveTableOffset(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!engine_) return env.Null();
    return Napi::Number::New(env, double(engine_->live_table_offset(info[0].As<Napi::Number>().Uint32Value())));
  }

  Napi::Value StatsOffset(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!engine_) return env.Null();
    return Napi::Number::New(env, double(engine_->stats_offset(info[0].As<Napi::Number>().Uint32Value())));
  }

  std::unique_ptr<Engine> engine_;
  napi_threadsafe_function tsfn_ = nullptr;
  bool released_ = false;
  bool hooked_ = false;
};

Napi::Value ProbeBackend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BackendId id;
  Napi::Object out = Napi::Object::New(env);
  if (!info[0].IsString() || !parse_backend(info[0].As<Napi::String>().Utf8Value(), &id)) {
    out.Set("available", false);
    out.Set("reason", "unknown backend name");
    return out;
  }
  Probe p = probe_backend(id);
  out.Set("available", p.available);
  out.Set("reason", p.reason);
  return out;
}

Napi::Object Layout(Napi::Env env) {
  Napi::Object l = Napi::Object::New(env);
  auto set = [&](const char* k, double v) { l.Set(k, Napi::Number::New(env, v)); };
  set("version", kLayoutVersion);
  set("slotBits", kSlotBits);
  set("threadBits", kThreadBits);
  set("genBits", kGenBits);
  set("maxSlotsPerThread", kMaxSlotsPerThread);
  set("maxIoThreads", kMaxIoThreads);
  set("controlBytes", kControlBytes);
  set("ctlVersion", kCtlVersion);
  set("ctlRingCount", kCtlRingCount);
  set("ctlRingBytes", kCtlRingBytes);
  set("ctlWakePending", kCtlWakePending);
  set("ringHeaderBytes", kRingHeaderBytes);
  set("ringTail", kRingTail);
  set("ringHead", kRingHead);
  set("ringStalled", kRingStalled);
  set("minRingBytes", kMinRingBytes);
  set("statsBytes", kStatsBytes);
  set("statCount", kStatCount);
  set("statAccepted", kStatAccepted);
  set("statOpen", kStatOpen);
  set("statClosedBase", kStatClosedBase);
  set("statFramesIn", kStatFramesIn);
  set("statBytesIn", kStatBytesIn);
  set("statSendsOut", kStatSendsOut);
  set("statBytesOut", kStatBytesOut);
  set("statRingStalls", kStatRingStalls);
  set("statDeferred", kStatDeferred);
  set("statAcceptErrors", kStatAcceptErrors);
  set("statStaleOps", kStatStaleOps);
  set("statWakeups", kStatWakeups);
  set("maxRingBytes", kMaxRingBytes);
  set("recordHeaderBytes", kRecordHeaderBytes);
  set("recordAlign", kRecordAlign);
  set("recKind", kRecKind);
  set("recFlags", kRecFlags);
  set("recFlagChecked", kRecFlagChecked);
  set("recLength", kRecLength);
  set("recToken", kRecToken);
  set("recPad", kRecPad);
  set("recOpen", kRecOpen);
  set("recFrame", kRecFrame);
  set("recFrameLarge", kRecFrameLarge);
  set("recClose", kRecClose);
  set("recDrain", kRecDrain);
  set("recStopped", kRecStopped);
  set("batchHeaderBytes", kBatchHeaderBytes);
  set("batchAlign", kBatchAlign);
  set("opSend", kOpSend);
  set("opClose", kOpClose);
  set("opCloseFlushed", kOpCloseFlushed);
  set("opPauseRecv", kOpPauseRecv);
  set("opResumeRecv", kOpResumeRecv);
  set("closePeer", kClosePeer);
  set("closeError", kCloseError);
  set("closeLocal", kCloseLocal);
  set("closeLocalFlushed", kCloseLocalFlushed);
  set("closeFrameTooLarge", kCloseFrameTooLarge);
  set("closeServerClosing", kCloseServerClosing);
  set("closeOutOfMemory", kCloseOutOfMemory);
  set("closeIdle", kCloseIdle);
  set("closeRefused", kCloseRefused);
  set("opAdmit", kOpAdmit);
  set("opRefuse", kOpRefuse);
  set("recFlagHeld", kRecFlagHeld);
  set("statRefused", kStatRefused);
  set("statPendingBytes", kStatPendingBytes);
  return l;
}

}  // namespace
}  // namespace ww

static Napi::Object InitWhirlwind(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeEngine", ww::NativeEngine::Init(env));
  exports.Set("probe", Napi::Function::New(env, ww::ProbeBackend));
  exports.Set("layout", ww::Layout(env));
  return exports;
}

NODE_API_MODULE(whirlwind, InitWhirlwind)
