//! Detection from the registry: Outlook Classic (COM), the new Outlook, and the
//! default mail client with the MAPI level it offers.

use crate::registry::{Hive, Registry, View};
use crate::Exports;

/// Where Windows keeps the default mail client (`(Default)` names its subkey).
pub const CLIENTS_MAIL: &str = r"Software\Clients\Mail";

/// The default mail client, as the registry names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailClient {
    /// The client's subkey name under `Software\Clients\Mail` (e.g. `Microsoft Outlook`).
    pub name: String,
    /// Where the choice was found (HKCU wins over HKLM).
    pub hive: Hive,
    /// The registry view it was found in.
    pub view: View,
    /// `DLLPath`: its Simple MAPI DLL.
    pub dll_path: Option<String>,
    /// `DLLPathEx`: its Extended MAPI DLL.
    pub dll_path_ex: Option<String>,
}

impl MailClient {
    /// `HKCU\Software\Clients\Mail\NAME` (with `Wow6432Node` in the 32-bit view).
    pub fn key(&self) -> String {
        match self.view {
            View::Native => format!(r"{}\{CLIENTS_MAIL}\{}", self.hive.name(), self.name),
            View::Wow32 => format!(
                r"{}\Software\Wow6432Node\Clients\Mail\{}",
                self.hive.name(),
                self.name
            ),
        }
    }
}

/// The MAPI level the default mail client offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapiLevel {
    /// Extended MAPI (`DLLPathEx` exports `MAPILogonEx`); Simple MAPI too.
    Full,
    /// Simple MAPI only (`DLLPath` exports `MAPISendMailW`).
    Simple,
}

impl MapiLevel {
    /// The probe level (see plugin-api's `Probe`: `full` offers `mapi-full`
    /// and `mapi-simple`).
    pub fn name(self) -> &'static str {
        match self {
            MapiLevel::Full => "full",
            MapiLevel::Simple => "simple",
        }
    }
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// The user's default mail client: `HKCU`, then `HKLM`, each in the 64-bit
/// view and then the 32-bit one. `None` when no hive names one.
pub fn default_mail_client(reg: &dyn Registry) -> Option<MailClient> {
    for hive in [Hive::CurrentUser, Hive::LocalMachine] {
        for view in [View::Native, View::Wow32] {
            let Some(name) = non_empty(reg.string(hive, view, CLIENTS_MAIL, "")) else {
                continue;
            };
            let key = format!(r"{CLIENTS_MAIL}\{name}");
            // The client's own key may live in the other hive (HKCU names a
            // client that installed itself machine-wide).
            let value = |v: &str| {
                non_empty(reg.string(hive, view, &key, v))
                    .or_else(|| non_empty(reg.string(Hive::LocalMachine, view, &key, v)))
            };
            return Some(MailClient {
                dll_path: value("DLLPath"),
                dll_path_ex: value("DLLPathEx"),
                name,
                hive,
                view,
            });
        }
    }
    None
}

/// The MAPI level of the default mail client: its DLLs are loaded and their
/// entry points looked up (the `Windows Messaging Subsystem` flags are
/// install-time leftovers and not used). `Err(reason)` when it offers none.
pub fn mapi_level(
    reg: &dyn Registry,
    exports: &dyn Exports,
) -> Result<(MailClient, MapiLevel), String> {
    let client = default_mail_client(reg).ok_or_else(|| {
        format!(
            r"no default mail client is set (HKCU and HKLM\{CLIENTS_MAIL} have no default value); choose one in Windows' default apps"
        )
    })?;
    let mut why = Vec::new();
    if let Some(ex) = &client.dll_path_ex {
        match exports.has_export(ex, "MAPILogonEx") {
            Ok(true) => return Ok((client, MapiLevel::Full)),
            Ok(false) => why.push(format!("its DLLPathEx {ex} does not export MAPILogonEx")),
            Err(e) => why.push(format!("its DLLPathEx {ex}: {e}")),
        }
    }
    match &client.dll_path {
        Some(dll) => match exports.has_export(dll, "MAPISendMailW") {
            Ok(true) => return Ok((client, MapiLevel::Simple)),
            Ok(false) => why.push(format!("its DLLPath {dll} does not export MAPISendMailW")),
            Err(e) => why.push(format!("its DLLPath {dll}: {e}")),
        },
        None => why.push("it has no DLLPath (no Simple MAPI)".to_string()),
    }
    Err(format!(
        "the default mail client `{}` ({}) offers no MAPI: {}",
        client.name,
        client.key(),
        why.join("; ")
    ))
}

/// Outlook Classic as registered for COM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outlook {
    /// The CLSID `Outlook.Application` maps to.
    pub clsid: String,
    /// `x86` or `x64` when Office says (`...\Office\<ver>\Outlook\Bitness`).
    pub bitness: Option<String>,
    /// The COM server (`LocalServer32`), when registered.
    pub server: Option<String>,
}

/// The ProgID Outlook Classic registers.
pub const OUTLOOK_PROGID: &str = "Outlook.Application";

const OFFICE_VERSIONS: [&str; 4] = ["16.0", "15.0", "14.0", "12.0"];

fn new_outlook_in_use(reg: &dyn Registry) -> bool {
    OFFICE_VERSIONS.iter().any(|v| {
        reg.dword(
            Hive::CurrentUser,
            View::Native,
            &format!(r"Software\Microsoft\Office\{v}\Outlook\Preferences"),
            "UseNewOutlook",
        ) == Some(1)
    })
}

const OLK_APP_PATH: &str = r"Software\Microsoft\Windows\CurrentVersion\App Paths\olk.exe";

/// The new Outlook's program (`olk.exe`), from its App Paths registration
/// (the user's, then the machine's), when it is installed.
pub fn new_outlook(reg: &dyn Registry) -> Option<String> {
    [Hive::CurrentUser, Hive::LocalMachine]
        .iter()
        .find_map(|&hive| non_empty(reg.string(hive, View::Native, OLK_APP_PATH, "")))
        .map(|p| p.trim_matches('"').to_string())
}

fn new_outlook_installed(reg: &dyn Registry) -> bool {
    new_outlook(reg).is_some()
}

/// Outlook Classic, installed, registered and the one in use; `Err(reason)`
/// otherwise. The new Outlook (`olk.exe`) offers neither COM nor MAPI.
pub fn outlook(reg: &dyn Registry) -> Result<Outlook, String> {
    let clsid = [View::Native, View::Wow32].iter().find_map(|&view| {
        non_empty(reg.string(
            Hive::ClassesRoot,
            view,
            &format!(r"{OUTLOOK_PROGID}\CLSID"),
            "",
        ))
    });
    let Some(clsid) = clsid else {
        return Err(if new_outlook_installed(reg) {
            "only the new Outlook (olk.exe) is installed; it offers neither COM nor MAPI, so nothing can be sent or composed through it".to_string()
        } else {
            format!(r"Outlook Classic is not installed (HKCR\{OUTLOOK_PROGID}\CLSID is missing)")
        });
    };
    if new_outlook_in_use(reg) {
        return Err("the new Outlook is in use (Outlook's UseNewOutlook = 1); it offers neither COM nor MAPI — switch back to Outlook Classic to send through it".to_string());
    }
    let server = [View::Native, View::Wow32].iter().find_map(|&view| {
        non_empty(reg.string(
            Hive::ClassesRoot,
            view,
            &format!(r"CLSID\{clsid}\LocalServer32"),
            "",
        ))
    });
    let bitness = OFFICE_VERSIONS.iter().find_map(|v| {
        [View::Native, View::Wow32].iter().find_map(|&view| {
            non_empty(reg.string(
                Hive::LocalMachine,
                view,
                &format!(r"Software\Microsoft\Office\{v}\Outlook"),
                "Bitness",
            ))
        })
    });
    Ok(Outlook {
        clsid,
        bitness,
        server,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::MapRegistry;
    use std::collections::BTreeMap;

    /// DLL → its exports; a DLL not listed does not load.
    struct Dlls(BTreeMap<&'static str, Vec<&'static str>>);

    impl Exports for Dlls {
        fn has_export(&self, dll: &str, name: &str) -> Result<bool, String> {
            self.0
                .get(dll)
                .map(|e| e.contains(&name))
                .ok_or_else(|| "cannot load it (the file is missing)".to_string())
        }
    }

    fn client(reg: MapRegistry, hive: Hive, name: &str, simple: &str, ex: &str) -> MapRegistry {
        let key = format!(r"{CLIENTS_MAIL}\{name}");
        let mut reg = reg.set(hive, View::Native, CLIENTS_MAIL, "", name);
        if !simple.is_empty() {
            reg = reg.set(hive, View::Native, &key, "DLLPath", simple);
        }
        if !ex.is_empty() {
            reg = reg.set(hive, View::Native, &key, "DLLPathEx", ex);
        }
        reg
    }

    #[test]
    fn no_client_says_how_to_set_one() {
        let dlls = Dlls(BTreeMap::new());
        let err = mapi_level(&MapRegistry::new(), &dlls).unwrap_err();
        assert!(err.contains("no default mail client is set"), "{err}");
        assert!(err.contains(r"Software\Clients\Mail"), "{err}");
    }

    #[test]
    fn hkcu_wins_over_hklm() {
        let reg = client(
            MapRegistry::new(),
            Hive::LocalMachine,
            "Machine",
            r"C:\m.dll",
            "",
        );
        let reg = client(reg, Hive::CurrentUser, "User", r"C:\u.dll", "");
        let c = default_mail_client(&reg).unwrap();
        assert_eq!(c.name, "User");
        assert_eq!(c.hive, Hive::CurrentUser);
        assert_eq!(c.dll_path.as_deref(), Some(r"C:\u.dll"));
        assert_eq!(c.key(), r"HKCU\Software\Clients\Mail\User");
    }

    #[test]
    fn hkcu_choice_with_a_machine_wide_client_key() {
        let reg = MapRegistry::new()
            .set(
                Hive::CurrentUser,
                View::Native,
                CLIENTS_MAIL,
                "",
                "Thunderbird",
            )
            .set(
                Hive::LocalMachine,
                View::Native,
                r"Software\Clients\Mail\Thunderbird",
                "DLLPath",
                r"C:\tb\mozMapi32.dll",
            );
        let c = default_mail_client(&reg).unwrap();
        assert_eq!(c.dll_path.as_deref(), Some(r"C:\tb\mozMapi32.dll"));
    }

    #[test]
    fn the_32_bit_view_is_read_too() {
        let reg = MapRegistry::new()
            .set(Hive::LocalMachine, View::Wow32, CLIENTS_MAIL, "", "Old")
            .set(
                Hive::LocalMachine,
                View::Wow32,
                r"Software\Clients\Mail\Old",
                "DLLPath",
                r"C:\old.dll",
            );
        let c = default_mail_client(&reg).unwrap();
        assert_eq!(c.view, View::Wow32);
        assert_eq!(c.key(), r"HKLM\Software\Wow6432Node\Clients\Mail\Old");
    }

    #[test]
    fn extended_mapi_is_full_simple_mapi_is_simple() {
        let reg = client(
            MapRegistry::new(),
            Hive::LocalMachine,
            "Outlook",
            r"C:\s.dll",
            r"C:\x.dll",
        );
        let dlls = Dlls(BTreeMap::from([
            (r"C:\s.dll", vec!["MAPISendMailW"]),
            (r"C:\x.dll", vec!["MAPILogonEx", "MAPIInitialize"]),
        ]));
        assert_eq!(mapi_level(&reg, &dlls).unwrap().1, MapiLevel::Full);
        let reg = client(
            MapRegistry::new(),
            Hive::LocalMachine,
            "Simple",
            r"C:\s.dll",
            "",
        );
        assert_eq!(mapi_level(&reg, &dlls).unwrap().1, MapiLevel::Simple);
    }

    #[test]
    fn a_dll_that_does_not_load_or_lacks_the_entry_point_is_explained() {
        let reg = client(
            MapRegistry::new(),
            Hive::CurrentUser,
            "Broken",
            r"C:\gone.dll",
            r"C:\x.dll",
        );
        let dlls = Dlls(BTreeMap::from([(r"C:\x.dll", vec!["MAPIInitialize"])]));
        let err = mapi_level(&reg, &dlls).unwrap_err();
        assert!(err.contains("`Broken`"), "{err}");
        assert!(
            err.contains(r"DLLPathEx C:\x.dll does not export MAPILogonEx"),
            "{err}"
        );
        assert!(
            err.contains(r"DLLPath C:\gone.dll: cannot load it"),
            "{err}"
        );
    }

    #[test]
    fn a_client_without_dllpath_offers_no_simple_mapi() {
        let reg = client(MapRegistry::new(), Hive::CurrentUser, "Web", "", "");
        let err = mapi_level(&reg, &Dlls(BTreeMap::new())).unwrap_err();
        assert!(err.contains("no DLLPath"), "{err}");
    }

    const CLSID: &str = "{0006F03A-0000-0000-C000-000000000046}";

    fn classic() -> MapRegistry {
        MapRegistry::new()
            .set(
                Hive::ClassesRoot,
                View::Native,
                r"Outlook.Application\CLSID",
                "",
                CLSID,
            )
            .set(
                Hive::ClassesRoot,
                View::Native,
                &format!(r"CLSID\{CLSID}\LocalServer32"),
                "",
                r"C:\Program Files\Microsoft Office\root\Office16\OUTLOOK.EXE",
            )
            .set(
                Hive::LocalMachine,
                View::Native,
                r"Software\Microsoft\Office\16.0\Outlook",
                "Bitness",
                "x64",
            )
    }

    #[test]
    fn outlook_classic_with_clsid_server_and_bitness() {
        let o = outlook(&classic()).unwrap();
        assert_eq!(o.clsid, CLSID);
        assert_eq!(o.bitness.as_deref(), Some("x64"));
        assert!(o.server.unwrap().ends_with("OUTLOOK.EXE"));
    }

    #[test]
    fn no_outlook_and_only_the_new_outlook_are_told_apart() {
        let err = outlook(&MapRegistry::new()).unwrap_err();
        assert!(err.contains("Outlook Classic is not installed"), "{err}");
        let reg = MapRegistry::new().set(
            Hive::CurrentUser,
            View::Native,
            r"Software\Microsoft\Windows\CurrentVersion\App Paths\olk.exe",
            "",
            r"C:\olk.exe",
        );
        let err = outlook(&reg).unwrap_err();
        assert!(err.contains("only the new Outlook"), "{err}");
        assert!(err.contains("neither COM nor MAPI"), "{err}");
    }

    #[test]
    fn the_new_outlook_program_from_app_paths() {
        assert_eq!(new_outlook(&MapRegistry::new()), None);
        let reg = MapRegistry::new().set(
            Hive::LocalMachine,
            View::Native,
            r"Software\Microsoft\Windows\CurrentVersion\App Paths\olk.exe",
            "",
            "\"C:\\Program Files\\WindowsApps\\olk.exe\"",
        );
        assert_eq!(
            new_outlook(&reg).as_deref(),
            Some(r"C:\Program Files\WindowsApps\olk.exe")
        );
    }

    #[test]
    fn classic_installed_but_new_outlook_in_use() {
        let reg = classic().set_dword(
            Hive::CurrentUser,
            View::Native,
            r"Software\Microsoft\Office\16.0\Outlook\Preferences",
            "UseNewOutlook",
            1,
        );
        let err = outlook(&reg).unwrap_err();
        assert!(err.contains("new Outlook is in use"), "{err}");
        let reg = classic().set_dword(
            Hive::CurrentUser,
            View::Native,
            r"Software\Microsoft\Office\16.0\Outlook\Preferences",
            "UseNewOutlook",
            0,
        );
        assert!(outlook(&reg).is_ok());
    }
}
