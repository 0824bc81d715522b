/* bcryptprimitives.c - a stand-in for Windows' bcryptprimitives.dll, which
 * Wine 8 (Debian 12) does not ship.  Rust's standard library (rolldown and
 * lightningcss, the native parts of vitest) imports ProcessPrng from it, so
 * without this vitest cannot start under Wine.  Only ProcessPrng is needed;
 * it fills the buffer from RtlGenRandom (advapi32's SystemFunction036).
 * Built and copied into the Wine prefix by test/windows/env.sh; never part
 * of the package. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
  while (len > 0) {
    ULONG n = len > 0x10000000 ? 0x10000000 : (ULONG)len;
    if (!SystemFunction036(data, n)) return FALSE;
    data += n;
    len -= n;
  }
  return TRUE;
}

BOOL WINAPI DllMain(HINSTANCE inst, DWORD reason, LPVOID reserved) {
  (void)inst;
  (void)reason;
  (void)reserved;
  return TRUE;
}
