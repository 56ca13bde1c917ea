//! Commands in hints, in the syntax of the user's shell: `export NAME=value` on Unix (sh, bash,
//! zsh), PowerShell's `$env:NAME="value"` with the cmd.exe `set` form next to it on Windows (a
//! process cannot tell reliably which of the two started it, so Windows hints name both).

/// Where a suggested directory lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    /// The user's home directory (`$HOME`; cmd: `%USERPROFILE%`).
    Home,
    /// The current directory (`$PWD`; cmd: `%CD%`).
    CurrentDir,
}

/// A shell syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shell {
    /// POSIX sh and its descendants.
    Sh,
    /// PowerShell (Windows' default terminal shell).
    PowerShell,
    /// cmd.exe.
    Cmd,
}

impl Shell {
    /// `$HOME/.ktx-runtime` and the like: `rel` under `base`, as this shell spells it.
    pub fn dir(self, base: Base, rel: &str) -> String {
        let var = match (self, base) {
            (Shell::Sh | Shell::PowerShell, Base::Home) => "$HOME",
            (Shell::Sh | Shell::PowerShell, Base::CurrentDir) => "$PWD",
            (Shell::Cmd, Base::Home) => "%USERPROFILE%",
            (Shell::Cmd, Base::CurrentDir) => "%CD%",
        };
        let sep = if self == Shell::Sh { '/' } else { '\\' };
        format!("{var}{sep}{}", rel.replace(['/', '\\'], &sep.to_string()))
    }

    /// The command that sets `name` to `value` for the commands run after it in this shell.
    pub fn set_env(self, name: &str, value: &str) -> String {
        match self {
            Shell::Sh => format!("export {name}={value}"),
            Shell::PowerShell => format!("$env:{name}=\"{value}\""),
            Shell::Cmd => format!("set {name}={value}"),
        }
    }
}

/// `` `export NAME=$HOME/rel` `` (Windows: the PowerShell and the cmd forms): the hint for
/// pointing `name` at the directory `rel` under `base`, with its backquotes.
pub fn set_env_dir(name: &str, base: Base, rel: &str) -> String {
    render(cfg!(windows), |shell| {
        shell.set_env(name, &shell.dir(base, rel))
    })
}

/// `` `export NAME=value` `` (Windows: both forms) for a literal `value`, with its backquotes.
pub fn set_env(name: &str, value: &str) -> String {
    render(cfg!(windows), |shell| shell.set_env(name, value))
}

fn render(windows: bool, line: impl Fn(Shell) -> String) -> String {
    if windows {
        format!(
            "`{}` (PowerShell; in cmd: `{}`)",
            line(Shell::PowerShell),
            line(Shell::Cmd)
        )
    } else {
        format!("`{}`", line(Shell::Sh))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_shell_spells_it_its_way() {
        let line = |windows| {
            render(windows, |s| {
                s.set_env("KTX_RUNTIME_ROOT", &s.dir(Base::Home, ".ktx-runtime"))
            })
        };
        assert_eq!(line(false), "`export KTX_RUNTIME_ROOT=$HOME/.ktx-runtime`");
        assert_eq!(
            line(true),
            "`$env:KTX_RUNTIME_ROOT=\"$HOME\\.ktx-runtime\"` (PowerShell; in cmd: `set KTX_RUNTIME_ROOT=%USERPROFILE%\\.ktx-runtime`)"
        );
        assert_eq!(Shell::Cmd.dir(Base::CurrentDir, "a/b"), "%CD%\\a\\b");
        assert_eq!(Shell::Sh.dir(Base::CurrentDir, "a"), "$PWD/a");
    }

    #[test]
    fn the_hint_matches_this_platform() {
        let hint = set_env_dir("X", Base::Home, "d");
        assert_eq!(hint.contains("$env:X="), cfg!(windows), "{hint}");
        assert_eq!(hint.starts_with("`export X="), cfg!(unix), "{hint}");
        assert_eq!(set_env("A", "b").contains("set A=b"), cfg!(windows));
    }
}
