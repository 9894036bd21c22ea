/* A test fixture for the Windows stage under Wine (scripts/windows.sh), never shipped.
 *
 * Rust's standard library (1.78+) imports ProcessPrng from bcryptprimitives.dll,
 * which Windows 10 and later have and Debian's Wine 8 does not: without this
 * stand-in every Rust program fails to start there ("import_dll ... not found").
 * scripts/windows.sh builds it with mingw into the test prefix's system32. */
#include <windows.h>
#include <ntsecapi.h>

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
  while (len > 0) {
    ULONG n = len > 0x10000000 ? 0x10000000 : (ULONG)len;
    if (!RtlGenRandom(data, n)) return FALSE;
    data += n;
    len -= n;
  }
  return TRUE;
}
