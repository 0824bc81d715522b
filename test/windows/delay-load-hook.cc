// delay-load-hook.cc - lets the cross-built addon load in a host that is not
// named node.exe (a renamed node, Electron).  The addon's Node-API imports
// name "node.exe" and are delay-loaded; when the loader is about to load
// that DLL this hook hands it the running executable instead.  The same as
// node-gyp's win_delay_load_hook.cc, which node-gyp adds to MSVC builds by
// itself; only the mingw-w64 cross-build (Makefile.mingw) links this file.
#include <windows.h>
#include <delayimp.h>
#include <cstring>

namespace {

FARPROC WINAPI load_exe_hook(unsigned event, PDelayLoadInfo info) {
  if (event != dliNotePreLoadLibrary) return nullptr;
  if (_stricmp(info->szDll, "node.exe") != 0) return nullptr;
  return reinterpret_cast<FARPROC>(GetModuleHandleW(nullptr));
}

}  // namespace

extern "C" {
PfnDliHook __pfnDliNotifyHook2 = load_exe_hook;
}
