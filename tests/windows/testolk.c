/* A test double of the new Outlook's program (olk.exe) for the Windows stage
 * under Wine: tests/tests/windows.rs registers it under App Paths\olk.exe. It
 * copies the file it is asked to open (argv[1]) to MAILHOST_TEST_OLK_LOG,
 * through a temporary name and a rename, so the test sees all of it or nothing. */
#include <windows.h>
#include <stdio.h>

int wmain(int argc, wchar_t **argv) {
  wchar_t log[MAX_PATH], tmp[MAX_PATH + 8];
  if (argc < 2 || !GetEnvironmentVariableW(L"MAILHOST_TEST_OLK_LOG", log, MAX_PATH)) return 2;
  swprintf(tmp, MAX_PATH + 8, L"%ls.tmp", log);
  if (!CopyFileW(argv[1], tmp, FALSE)) return 3;
  return MoveFileExW(tmp, log, MOVEFILE_REPLACE_EXISTING) ? 0 : 4;
}
