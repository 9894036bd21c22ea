/* A test double of Outlook Classic's object model for the Windows stage under
 * Wine, built as testoutlook.exe (scripts/windows.sh): an out-of-process COM
 * server, as the real Outlook is. tests/tests/windows.rs registers it as
 * Outlook.Application under HKCR\CLSID\{...}\LocalServer32; COM starts it
 * with -Embedding, it registers its class object (CoRegisterClassObject,
 * REGCLS_MULTIPLEUSE) and serves calls from its single-threaded apartment's
 * message loop until the last object is released (or a minute passes without
 * a client). So activation and the marshalling of the plugin's late-bound
 * IDispatch calls (GetIDsOfNames, Invoke with VARIANT/BSTR arguments and a
 * named DISPID_PROPERTYPUT, returned objects, EXCEPINFO) cross a process
 * boundary for real.
 *
 * It appends each call to the file named by MAILHOST_TEST_OUTLOOK_LOG (UTF-8,
 * one line each; the server inherits the variable from mailhost.exe, whose
 * COM starts it under Wine), and fails the member named by
 * MAILHOST_TEST_OUTLOOK_FAIL with DISP_E_EXCEPTION, scode E_ABORT (what the
 * object model guard answers). Its first line says how it was started
 * ("server started=<its arguments>"). */
#define COBJMACROS
#include <windows.h>
#include <oleauto.h>
#include <stdio.h>

enum { APP, ITEM, ATTACHMENTS };
enum { M_CREATEITEM = 1, M_TO, M_CC, M_BCC, M_SUBJECT, M_BODY, M_HTMLBODY, M_ATTACHMENTS, M_ADD, M_SEND, M_DISPLAY };
static const struct { const wchar_t *name; int id; } MEMBERS[] = {
  {L"CreateItem", M_CREATEITEM}, {L"To", M_TO}, {L"CC", M_CC}, {L"BCC", M_BCC},
  {L"Subject", M_SUBJECT}, {L"Body", M_BODY}, {L"HTMLBody", M_HTMLBODY},
  {L"Attachments", M_ATTACHMENTS}, {L"Add", M_ADD}, {L"Send", M_SEND}, {L"Display", M_DISPLAY},
};

typedef struct { IDispatch iface; LONG ref; int kind; } Obj;
static IDispatchVtbl obj_vtbl;
/* Live objects: the server ends when the last one goes. */
static LONG live;
static void last_object_gone(void);

static void log_line(const char *what, const wchar_t *value) {
  wchar_t path[MAX_PATH];
  static char buf[65536];
  if (!GetEnvironmentVariableW(L"MAILHOST_TEST_OUTLOOK_LOG", path, MAX_PATH)) return;
  FILE *f = _wfopen(path, L"ab");
  if (!f) return;
  fputs(what, f);
  if (value) {
    int n = WideCharToMultiByte(CP_UTF8, 0, value, -1, buf, sizeof buf, NULL, NULL);
    if (n <= 0) buf[0] = 0;
    fputc('=', f);
    for (char *p = buf; *p; p++) {
      if (*p == '\r') fputs("\\r", f);
      else if (*p == '\n') fputs("\\n", f);
      else fputc(*p, f);
    }
  }
  fputc('\n', f);
  fclose(f);
}

static IDispatch *new_obj(int kind) {
  Obj *o = (Obj *)CoTaskMemAlloc(sizeof(Obj));
  o->iface.lpVtbl = &obj_vtbl;
  o->ref = 1;
  o->kind = kind;
  InterlockedIncrement(&live);
  return &o->iface;
}

static HRESULT WINAPI o_qi(IDispatch *me, REFIID riid, void **out) {
  if (IsEqualIID(riid, &IID_IUnknown) || IsEqualIID(riid, &IID_IDispatch)) {
    *out = me;
    IDispatch_AddRef(me);
    return S_OK;
  }
  *out = NULL;
  return E_NOINTERFACE;
}
static ULONG WINAPI o_addref(IDispatch *me) { return InterlockedIncrement(&((Obj *)me)->ref); }
static ULONG WINAPI o_release(IDispatch *me) {
  LONG r = InterlockedDecrement(&((Obj *)me)->ref);
  if (r == 0) {
    CoTaskMemFree(me);
    if (InterlockedDecrement(&live) == 0) last_object_gone();
  }
  return r;
}
static HRESULT WINAPI o_tic(IDispatch *me, UINT *n) { (void)me; *n = 0; return S_OK; }
static HRESULT WINAPI o_ti(IDispatch *me, UINT i, LCID l, ITypeInfo **t) { (void)me; (void)i; (void)l; *t = NULL; return E_NOTIMPL; }
static HRESULT WINAPI o_ids(IDispatch *me, REFIID riid, LPOLESTR *names, UINT n, LCID lcid, DISPID *ids) {
  (void)me; (void)riid; (void)lcid;
  for (UINT i = 0; i < n; i++) {
    ids[i] = DISPID_UNKNOWN;
    for (size_t k = 0; k < sizeof MEMBERS / sizeof MEMBERS[0]; k++)
      if (!lstrcmpiW(names[i], MEMBERS[k].name)) ids[i] = MEMBERS[k].id;
    if (ids[i] == DISPID_UNKNOWN) return DISP_E_UNKNOWNNAME;
  }
  return S_OK;
}

static const wchar_t *name_of(DISPID id) {
  for (size_t k = 0; k < sizeof MEMBERS / sizeof MEMBERS[0]; k++)
    if (MEMBERS[k].id == id) return MEMBERS[k].name;
  return L"?";
}

static HRESULT WINAPI o_invoke(IDispatch *me, DISPID id, REFIID riid, LCID lcid, WORD flags,
                               DISPPARAMS *p, VARIANT *result, EXCEPINFO *ex, UINT *argerr) {
  Obj *o = (Obj *)me;
  wchar_t fail[64];
  char what[64];
  (void)riid; (void)lcid; (void)argerr;
  if (GetEnvironmentVariableW(L"MAILHOST_TEST_OUTLOOK_FAIL", fail, 64) && !lstrcmpiW(fail, name_of(id))) {
    if (ex) {
      memset(ex, 0, sizeof *ex);
      ex->bstrSource = SysAllocString(L"Test Outlook");
      ex->bstrDescription = SysAllocString(L"refused by the test double");
      ex->scode = E_ABORT;
    }
    return DISP_E_EXCEPTION;
  }
  if (flags & DISPATCH_PROPERTYPUT) {
    if (p->cArgs != 1 || p->cNamedArgs != 1 || p->rgdispidNamedArgs[0] != DISPID_PROPERTYPUT) return DISP_E_BADPARAMCOUNT;
    if (V_VT(&p->rgvarg[0]) != VT_BSTR) return DISP_E_TYPEMISMATCH;
    WideCharToMultiByte(CP_UTF8, 0, name_of(id), -1, what, sizeof what, NULL, NULL);
    log_line(what, V_BSTR(&p->rgvarg[0]));
    return S_OK;
  }
  if (o->kind == APP && id == M_CREATEITEM) {
    if (p->cArgs != 1 || V_VT(&p->rgvarg[0]) != VT_I4) return DISP_E_TYPEMISMATCH;
    snprintf(what, sizeof what, "CreateItem(%ld)", (long)V_I4(&p->rgvarg[0]));
    log_line(what, NULL);
    V_VT(result) = VT_DISPATCH;
    V_DISPATCH(result) = new_obj(ITEM);
    return S_OK;
  }
  if (o->kind == ITEM && id == M_ATTACHMENTS && (flags & DISPATCH_PROPERTYGET)) {
    V_VT(result) = VT_DISPATCH;
    V_DISPATCH(result) = new_obj(ATTACHMENTS);
    return S_OK;
  }
  if (o->kind == ATTACHMENTS && id == M_ADD) {
    WIN32_FILE_ATTRIBUTE_DATA a;
    if (p->cArgs < 1 || V_VT(&p->rgvarg[p->cArgs - 1]) != VT_BSTR) return DISP_E_TYPEMISMATCH;
    const wchar_t *path = V_BSTR(&p->rgvarg[p->cArgs - 1]);
    const wchar_t *base = wcsrchr(path, L'\\');
    log_line("Attachments.Add", base ? base + 1 : path);
    /* Outlook copies the file into the item now: it must exist. */
    if (GetFileAttributesExW(path, GetFileExInfoStandard, &a)) {
      snprintf(what, sizeof what, "size=%lu", (unsigned long)a.nFileSizeLow);
      log_line(what, NULL);
    } else {
      log_line("size=missing", NULL);
    }
    return S_OK;
  }
  if (o->kind == ITEM && id == M_SEND) { log_line("Send", NULL); return S_OK; }
  if (o->kind == ITEM && id == M_DISPLAY) {
    snprintf(what, sizeof what, "Display(%s)", p->cArgs == 1 && V_VT(&p->rgvarg[0]) == VT_BOOL ? (V_BOOL(&p->rgvarg[0]) ? "true" : "false") : "?");
    log_line(what, NULL);
    return S_OK;
  }
  return DISP_E_MEMBERNOTFOUND;
}

static IDispatchVtbl obj_vtbl = { o_qi, o_addref, o_release, o_tic, o_ti, o_ids, o_invoke };

/* The class factory (a static object). */
static HRESULT WINAPI f_qi(IClassFactory *me, REFIID riid, void **out) {
  if (IsEqualIID(riid, &IID_IUnknown) || IsEqualIID(riid, &IID_IClassFactory)) { *out = me; return S_OK; }
  *out = NULL;
  return E_NOINTERFACE;
}
static ULONG WINAPI f_addref(IClassFactory *me) { (void)me; return 2; }
static ULONG WINAPI f_release(IClassFactory *me) { (void)me; return 1; }
static HRESULT WINAPI f_create(IClassFactory *me, IUnknown *outer, REFIID riid, void **out) {
  (void)me;
  if (outer) return CLASS_E_NOAGGREGATION;
  IDispatch *app = new_obj(APP);
  HRESULT hr = IDispatch_QueryInterface(app, riid, out);
  IDispatch_Release(app);
  return hr;
}
static HRESULT WINAPI f_lock(IClassFactory *me, BOOL lock) { (void)me; (void)lock; return S_OK; }
static IClassFactoryVtbl factory_vtbl = { f_qi, f_addref, f_release, f_create, f_lock };
static IClassFactory factory = { &factory_vtbl };

/* The CLSID tests/tests/windows.rs registers. */
static const CLSID CLSID_TestOutlook = {0x6d41a0c5, 0x3e0b, 0x4c57, {0x9e, 0x33, 0x7a, 0x1f, 0x2b, 0x4c, 0x9d, 0x10}};
static DWORD cookie;

static void last_object_gone(void) {
  /* No new clients for this process: revoke first, then leave the loop. */
  if (cookie) CoRevokeClassObject(cookie);
  cookie = 0;
  PostQuitMessage(0);
}

int wmain(int argc, wchar_t **argv) {
  wchar_t args[512] = L"";
  MSG msg;
  for (int i = 1; i < argc; i++) {
    if (i > 1) wcsncat(args, L" ", 511 - wcslen(args));
    wcsncat(args, argv[i], 511 - wcslen(args));
  }
  log_line("server started", args);
  if (FAILED(CoInitializeEx(NULL, COINIT_APARTMENTTHREADED))) return 2;
  if (FAILED(CoRegisterClassObject(&CLSID_TestOutlook, (IUnknown *)&factory, CLSCTX_LOCAL_SERVER,
                                   REGCLS_MULTIPLEUSE, &cookie))) {
    log_line("server: CoRegisterClassObject failed", NULL);
    CoUninitialize();
    return 3;
  }
  /* A client that never comes (or dies) does not keep the server forever. */
  SetTimer(NULL, 0, 60000, NULL);
  while (GetMessageW(&msg, NULL, 0, 0) > 0) {
    if (msg.message == WM_TIMER && live == 0) break;
    DispatchMessageW(&msg);
  }
  if (cookie) CoRevokeClassObject(cookie);
  CoUninitialize();
  return 0;
}
