/* A test double of "the default mail client" for the Windows stage under Wine
 * (scripts/windows.sh builds it; tests/tests/windows.rs registers it under
 * HKLM\Software\Clients\Mail as DLLPath). Wine's mapi32.dll forwards
 * MAPISendMailW to it, as Windows' MAPI stub forwards to a real client.
 *
 * It also exports MAPILogonEx, so that registered as DLLPathEx too it reads as
 * a client with Extended MAPI (as Outlook is); the tests never call it.
 *
 * It appends what it received to the file named by MAILHOST_TEST_CLIENT_LOG
 * (UTF-8, one "key=value" per line, "end" after each call) and answers the
 * code in MAILHOST_TEST_CLIENT_ANSWER (default 0, SUCCESS_SUCCESS). */
#include <windows.h>
#include <stdio.h>
#include <wchar.h>

typedef struct {
  ULONG ulReserved, ulRecipClass;
  PWSTR lpszName, lpszAddress;
  ULONG ulEIDSize;
  PVOID lpEntryID;
} RecipW;

typedef struct {
  ULONG ulReserved, flFlags, nPosition;
  PWSTR lpszPathName, lpszFileName;
  PVOID lpFileType;
} FileW;

typedef struct {
  ULONG ulReserved;
  PWSTR lpszSubject, lpszNoteText, lpszMessageType, lpszDateReceived, lpszConversationID;
  ULONG flFlags;
  RecipW *lpOriginator;
  ULONG nRecipCount;
  RecipW *lpRecips;
  ULONG nFileCount;
  FileW *lpFiles;
} MessageW;

static void put(FILE *f, const char *key, const wchar_t *value) {
  static char buf[65536];
  int n = value ? WideCharToMultiByte(CP_UTF8, 0, value, -1, buf, sizeof buf, NULL, NULL) : 0;
  if (n <= 0) buf[0] = 0;
  /* one line per value: line breaks escaped */
  fprintf(f, "%s=", key);
  for (char *p = buf; *p; p++) {
    if (*p == '\r') fputs("\\r", f);
    else if (*p == '\n') fputs("\\n", f);
    else fputc(*p, f);
  }
  fputc('\n', f);
}

__declspec(dllexport) ULONG WINAPI MAPISendMailW(ULONG_PTR session, ULONG_PTR ui, MessageW *m,
                                                 ULONG flags, ULONG reserved) {
  wchar_t path[MAX_PATH], answer[32];
  ULONG code = 0;
  (void)session; (void)ui; (void)reserved;
  if (GetEnvironmentVariableW(L"MAILHOST_TEST_CLIENT_ANSWER", answer, 32)) code = (ULONG)_wtoi(answer);
  if (!GetEnvironmentVariableW(L"MAILHOST_TEST_CLIENT_LOG", path, MAX_PATH)) return code;
  FILE *f = _wfopen(path, L"ab");
  if (!f) return 2; /* MAPI_E_FAILURE */
  fprintf(f, "flags=%lu\n", (unsigned long)flags);
  put(f, "subject", m->lpszSubject);
  put(f, "body", m->lpszNoteText);
  for (ULONG i = 0; i < m->nRecipCount; i++) {
    char key[32];
    snprintf(key, sizeof key, "recip%lu", (unsigned long)m->lpRecips[i].ulRecipClass);
    put(f, key, m->lpRecips[i].lpszAddress);
  }
  for (ULONG i = 0; i < m->nFileCount; i++) {
    WIN32_FILE_ATTRIBUTE_DATA a;
    put(f, "file", m->lpFiles[i].lpszFileName);
    /* a client reads the file during the call: it must exist now */
    if (GetFileAttributesExW(m->lpFiles[i].lpszPathName, GetFileExInfoStandard, &a))
      fprintf(f, "size=%lu\n", (unsigned long)a.nFileSizeLow);
    else
      fprintf(f, "size=missing\n");
  }
  fprintf(f, "end\n");
  fclose(f);
  return code;
}

/* Extended MAPI's entry point, only for detection (MAPI_E_CALL_FAILED if called). */
__declspec(dllexport) HRESULT WINAPI MAPILogonEx(ULONG_PTR ui, LPWSTR profile, LPWSTR password,
                                                 ULONG flags, void **session) {
  (void)ui; (void)profile; (void)password; (void)flags;
  if (session) *session = NULL;
  return E_FAIL;
}
