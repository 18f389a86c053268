//! Finding, checking and loading the ONNX Runtime shared library.
//!
//! spinewatch links no ONNX Runtime at build time (`ort` feature `load-dynamic`): the library
//! is found at run time, so one binary runs on CPU-only hosts and on GPU hosts alike. The
//! pinned library is `libonnxruntime.so.1.31.1` from the PyPI wheel `onnxruntime==1.31.1`,
//! which `scripts/setup-ort` installs into the project's `.venv`.
//!
//! # Discovery
//!
//! The first source that names or finds a library wins ([`DylibSource`], in order):
//!
//! 1. `--ort-dylib` ([`DylibRequest::flag`]),
//! 2. `[runtime] ort_dylib` in the config file ([`DylibRequest::config`]),
//! 3. the `ORT_DYLIB_PATH` environment variable,
//! 4. a project-local install: `.venv/lib/python3*/site-packages/onnxruntime/capi/` under
//!    `$SPINEWATCH_HOME`, then under each ancestor of the executable's directory, then under
//!    each ancestor of the working directory,
//! 5. the `onnxruntime` package of the interpreter named by `SPINEWATCH_PYTHON`
//!    (default `python3`).
//!
//! A path named by 1-3 that is missing or unusable is an error by itself: the operator asked
//! for that file, so silently loading another one would hide the mistake. No path is
//! compiled in, so a copied binary never finds the build tree's `.venv` by accident.
//!
//! # Checking before loading
//!
//! `ort` panics when its library is not ONNX Runtime, and only warns about a newer minor
//! version. So [`Runtime::load`] opens the candidate itself first (with `libloading`), reads
//! `OrtGetApiBase()->GetVersionString()`, requires [`REQUIRED_ORT_SERIES`] and checks that the
//! C API version `ort` needs is handed out; only then is the path given to `ort`. Every
//! failure is an [`Error`] that names the file, who named it and the fix.
//!
//! # Once per process
//!
//! `ort` keeps the library and its environment in process-wide `OnceLock`s: one library and
//! one environment per process. [`Runtime::load`] mirrors that with a process-wide
//! [`Runtime`]: the first successful call loads, later calls return the same value, and a
//! later call that resolves to a *different* library fails with [`Error::AlreadyLoaded`].
//! Nothing else in the process may call `ort` before [`Runtime::load`]: the first `ort` call
//! would load a library of its own choosing (or panic).

use std::ffi::{CStr, OsString, c_char, c_int};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock, PoisonError};

use crate::error::{Error, Result};

/// The ONNX Runtime minor version spinewatch is built (`ort` feature `api-31`) and validated
/// against; a library of another `1.x` series is refused.
pub const REQUIRED_ORT_MINOR: u32 = 31;

/// The exact ONNX Runtime release `scripts/setup-ort` installs.
pub const PINNED_ORT_VERSION: &str = "1.31.1";

/// The accepted release series, for messages.
pub const REQUIRED_ORT_SERIES: &str = "1.31.x";

/// The fix for every "no usable ONNX Runtime" error.
pub const SETUP_HINT: &str = "run `scripts/setup-ort` (installs onnxruntime==1.31.1 into .venv) \
     or set ORT_DYLIB_PATH / --ort-dylib to libonnxruntime.so.1.31.1";

/// Environment variable naming the library explicitly (the variable `ort` itself reads).
pub const ENV_DYLIB_PATH: &str = "ORT_DYLIB_PATH";

/// Environment variable naming an extra root whose `.venv` is searched first.
pub const ENV_HOME: &str = "SPINEWATCH_HOME";

/// Environment variable naming the Python interpreter searched last (default `python3`).
pub const ENV_PYTHON: &str = "SPINEWATCH_PYTHON";

/// Which source named or found the library.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DylibSource {
    /// The `--ort-dylib` command-line flag.
    Flag,
    /// `[runtime] ort_dylib` in the config file.
    Config,
    /// The `ORT_DYLIB_PATH` environment variable.
    Env,
    /// A `.venv` found next to the executable, the working directory or `SPINEWATCH_HOME`.
    ProjectLocal,
    /// The `onnxruntime` package of the Python interpreter (`SPINEWATCH_PYTHON`).
    Python,
}

impl DylibSource {
    /// A stable snake_case key for machine-readable output (`flag`, `config`, `env`,
    /// `project_local`, `python`).
    pub fn key(self) -> &'static str {
        match self {
            Self::Flag => "flag",
            Self::Config => "config",
            Self::Env => "env",
            Self::ProjectLocal => "project_local",
            Self::Python => "python",
        }
    }

    /// Whether the operator named the path (flag, config, environment) rather than it being
    /// found by searching.
    pub fn is_explicit(self) -> bool {
        matches!(self, Self::Flag | Self::Config | Self::Env)
    }
}

impl fmt::Display for DylibSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Flag => "--ort-dylib",
            Self::Config => "[runtime] ort_dylib",
            Self::Env => "ORT_DYLIB_PATH",
            Self::ProjectLocal => "project .venv",
            Self::Python => "python onnxruntime package",
        })
    }
}

/// The paths the operator named, highest priority first; the rest is searched.
#[derive(Debug, Clone, Copy, Default)]
pub struct DylibRequest<'a> {
    /// From `--ort-dylib`.
    pub flag: Option<&'a Path>,
    /// From `[runtime] ort_dylib`.
    pub config: Option<&'a Path>,
}

/// A library file chosen by discovery; not opened yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The library file, as named or found.
    pub path: PathBuf,
    /// Who named or found it.
    pub source: DylibSource,
}

/// Chooses the library file as described in the [module docs](self), reading the process
/// environment, executable path and working directory. Opens nothing.
pub fn locate(request: DylibRequest<'_>) -> Result<Located> {
    locate_in(request, &SearchEnv::from_process())
}

/// The loaded ONNX Runtime: one per process (see the [module docs](self)).
pub struct Runtime {
    /// The library file, canonical (absolute, symlinks resolved).
    pub dylib: PathBuf,
    /// Who named or found it.
    pub source: DylibSource,
    /// The version the library reports, e.g. `1.31.1`.
    pub version: String,
    /// The process-wide environment sessions are created under.
    env: ort::environment::Environment,
    /// Our own handle on the library, kept open so it is never unloaded between the check
    /// and `ort`'s use of it.
    _library: libloading::Library,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("dylib", &self.dylib)
            .field("source", &self.source)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// The runtime, once loaded.
static RUNTIME: OnceLock<Runtime> = OnceLock::new();
/// Serialises loading, so two threads never race to hand different libraries to `ort`.
static LOADING: Mutex<()> = Mutex::new(());
/// The library handed to `ort`, even if creating the environment then failed: `ort` keeps it
/// for the life of the process, so no other library may follow it.
static HANDED_TO_ORT: OnceLock<PathBuf> = OnceLock::new();

impl Runtime {
    /// Finds, checks and loads ONNX Runtime, and creates the process-wide environment.
    ///
    /// The first successful call does the work; later calls return the same runtime when
    /// discovery resolves to the same file, and [`Error::AlreadyLoaded`] otherwise. A call
    /// that fails before handing the library to `ort` (not found, wrong version, not ONNX
    /// Runtime) leaves nothing behind, so a later call may load a better library.
    pub fn load(request: DylibRequest<'_>) -> Result<&'static Runtime> {
        let located = locate(request)?;
        let _guard = LOADING.lock().unwrap_or_else(PoisonError::into_inner);

        let path = std::fs::canonicalize(&located.path).unwrap_or_else(|_| located.path.clone());
        if let Some(runtime) = RUNTIME.get() {
            return if runtime.dylib == path {
                Ok(runtime)
            } else {
                Err(Error::AlreadyLoaded {
                    loaded: runtime.dylib.clone(),
                    requested: path,
                })
            };
        }
        if let Some(loaded) = HANDED_TO_ORT.get().filter(|loaded| **loaded != path) {
            return Err(Error::AlreadyLoaded {
                loaded: loaded.clone(),
                requested: path,
            });
        }

        let checked = check_library(&path, &located)?;
        // Only now may ort see the path: it panics on anything but a usable ONNX Runtime.
        let builder = ort::init_from(&path).map_err(|source| Error::Init {
            path: path.clone(),
            source,
        })?;
        // Already set only when an earlier attempt handed over this same path.
        HANDED_TO_ORT.get_or_init(|| path.clone());
        // Telemetry off: a hospital deployment sends nothing anywhere it was not told to.
        let env = builder
            .with_name("spinewatch")
            .with_telemetry(false)
            .build()
            .map_err(|source| Error::Environment {
                path: path.clone(),
                source,
            })?;

        tracing::info!(
            version = %checked.version,
            source = %located.source,
            dylib = %path.display(),
            "ONNX Runtime loaded."
        );
        let runtime = Runtime {
            dylib: path,
            source: located.source,
            version: checked.version,
            env,
            _library: checked.library,
        };
        Ok(RUNTIME.get_or_init(|| runtime))
    }

    /// The runtime, if [`load`](Self::load) has succeeded in this process.
    pub fn get() -> Option<&'static Runtime> {
        RUNTIME.get()
    }

    /// The process-wide `ort` environment that sessions are created under.
    pub fn environment(&self) -> &ort::environment::Environment {
        &self.env
    }

    /// The execution providers compiled into the loaded library, by ONNX Runtime name
    /// (e.g. `["CPUExecutionProvider"]`). Being listed does not prove the provider's own
    /// dependencies (CUDA, TensorRT) load: that shows when a session registers it.
    pub fn available_providers(&self) -> Result<Vec<String>> {
        let api = ort::api();
        let mut list: *mut *mut c_char = std::ptr::null_mut();
        let mut count: c_int = 0;
        // SAFETY: both out-pointers are valid for writes; the status is owned by the call below.
        let status = unsafe { (api.GetAvailableProviders)(&mut list, &mut count) };
        // SAFETY: `status` was just returned by the ONNX Runtime C API.
        unsafe { ort::Error::result_from_status(status) }
            .map_err(|source| Error::Providers { source })?;
        if list.is_null() {
            return Ok(Vec::new());
        }
        let names = (0..usize::try_from(count).unwrap_or(0))
            .map(|i| {
                // SAFETY: ONNX Runtime returned `count` valid, NUL-terminated strings.
                unsafe { CStr::from_ptr(*list.add(i)) }
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        // SAFETY: `list` and `count` are exactly what GetAvailableProviders returned.
        let status = unsafe { (api.ReleaseAvailableProviders)(list, count) };
        // SAFETY: as above.
        unsafe { ort::Error::result_from_status(status) }
            .map_err(|source| Error::Providers { source })?;
        Ok(names)
    }
}

/// A library that passed [`check_library`].
struct Checked {
    library: libloading::Library,
    version: String,
}

/// Opens `path` (the canonical form of `located.path`) and checks that it is ONNX Runtime of
/// the required series and hands out the C API version `ort` needs, so that `ort` (which
/// panics instead) never sees a bad library. Errors name the path as the operator gave it.
fn check_library(path: &Path, located: &Located) -> Result<Checked> {
    let origin = located.source;
    let fail_path = || located.path.clone();
    // SAFETY: loading runs the library's initialisers. The path came from the operator or
    // from an onnxruntime install; this is the same trust `ort` itself would place in it.
    let library = unsafe { libloading::Library::new(path) }.map_err(|cause| Error::Dlopen {
        path: fail_path(),
        origin,
        cause,
    })?;
    type GetApiBase = unsafe extern "system" fn() -> *const ort::sys::OrtApiBase;
    // SAFETY: every ONNX Runtime release exports `OrtGetApiBase` with this signature
    // (onnxruntime_c_api.h); a library without the symbol is refused here.
    let get_api_base =
        unsafe { library.get::<GetApiBase>(b"OrtGetApiBase\0") }.map_err(|_| Error::NotOrt {
            path: fail_path(),
            origin,
        })?;
    // SAFETY: signature as above; the function takes no arguments and has no preconditions.
    let base = unsafe { get_api_base() };
    if base.is_null() {
        return Err(Error::NotOrt {
            path: fail_path(),
            origin,
        });
    }
    // SAFETY: `base` is non-null and points at the library's static `OrtApiBase`.
    let raw_version = unsafe { ((*base).GetVersionString)() };
    let version = if raw_version.is_null() {
        String::new()
    } else {
        // SAFETY: GetVersionString returns a static NUL-terminated string.
        unsafe { CStr::from_ptr(raw_version) }
            .to_string_lossy()
            .into_owned()
    };
    match parse_version(&version) {
        None => {
            return Err(Error::BadVersionString {
                version,
                path: fail_path(),
                origin,
            });
        }
        Some(parsed) if !parsed.is_required_series() => {
            return Err(Error::WrongVersion {
                version,
                path: fail_path(),
                origin,
            });
        }
        Some(_) => {}
    }
    // SAFETY: `base` as above; GetApi returns null for an unsupported version, checked below.
    let api = unsafe { ((*base).GetApi)(ort::sys::ORT_API_VERSION) };
    if api.is_null() {
        return Err(Error::ApiUnavailable {
            version,
            path: fail_path(),
            api: ort::sys::ORT_API_VERSION,
        });
    }
    Ok(Checked { library, version })
}

/// A version as ONNX Runtime reports it (`1.31.1`, possibly with a suffix like `-dev`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    major: u32,
    minor: u32,
    patch: u32,
}

impl Version {
    fn is_required_series(self) -> bool {
        self.major == 1 && self.minor == REQUIRED_ORT_MINOR
    }
}

/// Parses `MAJOR.MINOR.PATCH`, ignoring anything after the patch digits.
fn parse_version(text: &str) -> Option<Version> {
    let mut parts = text.trim().splitn(3, '.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let rest = parts.next()?;
    let digits = rest.split(|c: char| !c.is_ascii_digit()).next()?;
    let patch = digits.parse().ok()?;
    Some(Version {
        major,
        minor,
        patch,
    })
}

/// Everything discovery reads from the process, gathered once so tests can supply their own.
#[derive(Debug, Clone, Default)]
struct SearchEnv {
    /// `ORT_DYLIB_PATH`; empty counts as unset, as it does for `ort`.
    dylib_path: Option<OsString>,
    /// `SPINEWATCH_HOME`.
    home: Option<PathBuf>,
    /// `SPINEWATCH_PYTHON`, else `python3`.
    python: OsString,
    /// `std::env::current_exe()`.
    exe: Option<PathBuf>,
    /// `std::env::current_dir()`.
    cwd: Option<PathBuf>,
}

impl SearchEnv {
    fn from_process() -> Self {
        let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        SearchEnv {
            dylib_path: non_empty(ENV_DYLIB_PATH),
            home: non_empty(ENV_HOME).map(PathBuf::from),
            python: non_empty(ENV_PYTHON).unwrap_or_else(|| OsString::from("python3")),
            exe: std::env::current_exe().ok(),
            cwd: std::env::current_dir().ok(),
        }
    }

    /// Directories whose `.venv` is searched, in order, without repeats.
    fn project_roots(&self) -> Vec<PathBuf> {
        let mut roots: Vec<PathBuf> = Vec::new();
        let exe_dir = self.exe.as_deref().and_then(Path::parent);
        let candidates = self
            .home
            .iter()
            .map(PathBuf::as_path)
            .chain(exe_dir.into_iter().flat_map(Path::ancestors))
            .chain(self.cwd.iter().flat_map(|cwd| cwd.ancestors()));
        for root in candidates {
            if !root.as_os_str().is_empty() && !roots.iter().any(|r| r == root) {
                roots.push(root.to_path_buf());
            }
        }
        roots
    }
}

fn locate_in(request: DylibRequest<'_>, env: &SearchEnv) -> Result<Located> {
    let explicit = [
        (request.flag.map(Path::to_path_buf), DylibSource::Flag),
        (request.config.map(Path::to_path_buf), DylibSource::Config),
        (env.dylib_path.clone().map(PathBuf::from), DylibSource::Env),
    ];
    if let Some((Some(path), source)) = explicit.into_iter().find(|(path, _)| path.is_some()) {
        tracing::debug!(source = %source, dylib = %path.display(), "ONNX Runtime named explicitly.");
        return if path.exists() {
            Ok(Located { path, source })
        } else {
            Err(Error::ExplicitMissing {
                path,
                origin: source,
            })
        };
    }

    let mut looked_in = vec![format!("{ENV_DYLIB_PATH} (unset)")];

    let roots = env.project_roots();
    for root in &roots {
        if let Some(path) = find_in_venv(&root.join(".venv")) {
            tracing::debug!(dylib = %path.display(), "ONNX Runtime found in a project .venv.");
            return Ok(Located {
                path,
                source: DylibSource::ProjectLocal,
            });
        }
    }
    let shown: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
    looked_in.push(format!(".venv in {}", shown.join(", ")));

    match python_capi_dir(&env.python) {
        Ok(capi) => {
            if let Some(path) = find_in_capi(&capi) {
                tracing::debug!(dylib = %path.display(), "ONNX Runtime found through Python.");
                return Ok(Located {
                    path,
                    source: DylibSource::Python,
                });
            }
            looked_in.push(format!("{} (no libonnxruntime.so*)", capi.display()));
        }
        Err(why) => looked_in.push(format!("python `{}` ({why})", env.python.to_string_lossy())),
    }

    Err(Error::NotFound { looked_in })
}

/// `VENV/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*`.
fn find_in_venv(venv: &Path) -> Option<PathBuf> {
    let lib = venv.join("lib");
    let mut pythons: Vec<PathBuf> = std::fs::read_dir(&lib)
        .ok()?
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("python3"))
        .map(|entry| entry.path())
        .collect();
    pythons.sort();
    pythons
        .iter()
        .rev()
        .find_map(|dir| find_in_capi(&dir.join("site-packages/onnxruntime/capi")))
}

/// The ONNX Runtime library in an `onnxruntime/capi` directory: the pinned release's file if
/// present, else the last `libonnxruntime.so*` by name (there is one per wheel).
fn find_in_capi(capi: &Path) -> Option<PathBuf> {
    let pinned = capi.join(format!("libonnxruntime.so.{PINNED_ORT_VERSION}"));
    if pinned.is_file() {
        return Some(pinned);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(capi)
        .ok()?
        .filter_map(|entry| entry.ok())
        .filter(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            // `libonnxruntime_providers_shared.so` and friends are not the runtime.
            name == "libonnxruntime.so" || name.starts_with("libonnxruntime.so.")
        })
        .map(|entry| entry.path())
        .filter(|path| path.is_file())
        .collect();
    found.sort();
    found.pop()
}

/// Asks `python` where its `onnxruntime` package lives; returns `.../onnxruntime/capi`.
fn python_capi_dir(python: &std::ffi::OsStr) -> std::result::Result<PathBuf, &'static str> {
    const SCRIPT: &str = "import onnxruntime, os; print(os.path.dirname(onnxruntime.__file__))";
    let output = Command::new(python)
        .args(["-c", SCRIPT])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|_| "could not run")?;
    if !output.status.success() {
        return Err("no onnxruntime module");
    }
    let text = String::from_utf8(output.stdout).map_err(|_| "printed a non-UTF-8 path")?;
    let dir = text.trim();
    if dir.is_empty() {
        return Err("printed no path");
    }
    Ok(Path::new(dir).join("capi"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    const NO_PYTHON: &str = "/nonexistent/python3";

    /// An environment that finds nothing unless a test adds it.
    fn bare_env(dir: &Path) -> SearchEnv {
        SearchEnv {
            dylib_path: None,
            home: None,
            python: OsString::from(NO_PYTHON),
            exe: Some(dir.join("bin/spinewatch")),
            cwd: Some(dir.join("work")),
        }
    }

    /// Lays out `ROOT/.venv/lib/python3.11/site-packages/onnxruntime/capi/NAME`.
    fn fake_venv(root: &Path, name: &str) -> PathBuf {
        let capi = root.join(".venv/lib/python3.11/site-packages/onnxruntime/capi");
        std::fs::create_dir_all(&capi).expect("create capi");
        std::fs::write(capi.join("libonnxruntime_providers_shared.so"), b"").expect("write");
        let lib = capi.join(name);
        std::fs::write(&lib, b"not really a library").expect("write lib");
        lib
    }

    #[test]
    fn parses_versions() {
        let v = |major, minor, patch| {
            Some(Version {
                major,
                minor,
                patch,
            })
        };
        assert_eq!(parse_version("1.31.1"), v(1, 31, 1));
        assert_eq!(parse_version(" 1.31.0\n"), v(1, 31, 0));
        assert_eq!(parse_version("1.32.0-dev"), v(1, 32, 0));
        assert_eq!(parse_version("1.20.0+cuda"), v(1, 20, 0));
        assert_eq!(parse_version("1.31"), None);
        assert_eq!(parse_version("one.31.1"), None);
        assert_eq!(parse_version(""), None);
    }

    #[test]
    fn accepts_only_the_required_series() {
        let ok = |s: &str| parse_version(s).is_some_and(Version::is_required_series);
        assert!(ok("1.31.1"));
        assert!(ok("1.31.0"));
        assert!(!ok("1.20.0"));
        assert!(!ok("1.30.9"));
        assert!(!ok("1.32.0"));
        assert!(!ok("2.31.0"));
    }

    #[test]
    fn flag_beats_config_beats_env() {
        let dir = tempfile::tempdir().expect("tempdir");
        let [flag, config, env_lib] = ["flag.so", "config.so", "env.so"].map(|n| {
            let p = dir.path().join(n);
            std::fs::write(&p, b"").expect("write");
            p
        });
        let mut env = bare_env(dir.path());
        env.dylib_path = Some(env_lib.clone().into_os_string());
        // A project .venv is present too, and must lose to every explicit source.
        fake_venv(&dir.path().join("work"), "libonnxruntime.so.1.31.1");

        let request = DylibRequest {
            flag: Some(&flag),
            config: Some(&config),
        };
        let found = locate_in(request, &env).expect("flag");
        assert_eq!(
            found,
            Located {
                path: flag,
                source: DylibSource::Flag
            }
        );

        let request = DylibRequest {
            flag: None,
            config: Some(&config),
        };
        let found = locate_in(request, &env).expect("config");
        assert_eq!(
            found,
            Located {
                path: config,
                source: DylibSource::Config
            }
        );

        let found = locate_in(DylibRequest::default(), &env).expect("env");
        assert_eq!(
            found,
            Located {
                path: env_lib,
                source: DylibSource::Env
            }
        );
    }

    #[test]
    fn missing_explicit_path_is_an_error_without_fallback() {
        let dir = tempfile::tempdir().expect("tempdir");
        let env = bare_env(dir.path());
        fake_venv(&dir.path().join("work"), "libonnxruntime.so.1.31.1");
        let missing = dir.path().join("nope/libonnxruntime.so");

        let request = DylibRequest {
            flag: Some(&missing),
            config: None,
        };
        let err = locate_in(request, &env).expect_err("missing flag path");
        assert!(
            matches!(&err, Error::ExplicitMissing { origin: DylibSource::Flag, path } if *path == missing),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains("nope/libonnxruntime.so"), "{message}");
        assert!(message.contains("scripts/setup-ort"), "{message}");

        let mut env = env;
        env.dylib_path = Some(missing.clone().into_os_string());
        let err = locate_in(DylibRequest::default(), &env).expect_err("missing env path");
        assert!(
            matches!(
                err,
                Error::ExplicitMissing {
                    origin: DylibSource::Env,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn home_beats_exe_beats_cwd() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().join("home");
        let mut env = bare_env(dir.path());
        env.home = Some(home.clone());
        // exe is DIR/bin/spinewatch: its ancestors include DIR itself, as cwd's do.
        let in_cwd = fake_venv(&dir.path().join("work"), "libonnxruntime.so.1.31.1");
        let found = locate_in(DylibRequest::default(), &env).expect("cwd");
        assert_eq!(
            found,
            Located {
                path: in_cwd,
                source: DylibSource::ProjectLocal
            }
        );

        let in_exe_dir = fake_venv(&dir.path().join("bin"), "libonnxruntime.so.1.31.1");
        let found = locate_in(DylibRequest::default(), &env).expect("exe");
        assert_eq!(found.path, in_exe_dir);

        let in_home = fake_venv(&home, "libonnxruntime.so.1.31.1");
        let found = locate_in(DylibRequest::default(), &env).expect("home");
        assert_eq!(found.path, in_home);
    }

    #[test]
    fn capi_prefers_the_pinned_file_and_skips_provider_libraries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let other = fake_venv(dir.path(), "libonnxruntime.so.1.31.0");
        let capi = other.parent().expect("capi").to_path_buf();
        assert_eq!(find_in_capi(&capi), Some(other));
        let pinned = capi.join("libonnxruntime.so.1.31.1");
        std::fs::write(&pinned, b"").expect("write");
        assert_eq!(find_in_capi(&capi), Some(pinned));
        assert_eq!(find_in_capi(&dir.path().join("absent")), None);
    }

    #[test]
    fn nothing_found_names_every_place_and_the_fix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let env = bare_env(dir.path());
        let err = locate_in(DylibRequest::default(), &env).expect_err("nothing there");
        let message = err.to_string();
        assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
        assert!(
            message.starts_with("ONNX Runtime 1.31.x not found"),
            "{message}"
        );
        assert!(message.contains("ORT_DYLIB_PATH (unset)"), "{message}");
        assert!(
            message.contains(&dir.path().join("work").display().to_string()),
            "{message}"
        );
        assert!(message.contains(NO_PYTHON), "{message}");
        assert!(message.contains("run `scripts/setup-ort`"), "{message}");
    }

    #[test]
    fn python_without_onnxruntime_is_reported() {
        // `false` runs but fails, like an interpreter without the package.
        let why = python_capi_dir(std::ffi::OsStr::new("false")).expect_err("fails");
        assert_eq!(why, "no onnxruntime module");
        let why = python_capi_dir(std::ffi::OsStr::new(NO_PYTHON)).expect_err("absent");
        assert_eq!(why, "could not run");
    }

    /// The one test that loads the real library (loading is once per process).
    #[test]
    fn loads_the_project_library_once() {
        let located = match locate(DylibRequest::default()) {
            Ok(located) => located,
            Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("ONNX Runtime is required in CI: {e}")
            }
            Err(e) => {
                eprintln!("skipping: {e}");
                return;
            }
        };
        let runtime = Runtime::load(DylibRequest::default()).expect("load");
        assert!(runtime.version.starts_with("1.31."), "{}", runtime.version);
        assert_eq!(runtime.source, located.source);
        let providers = runtime.available_providers().expect("providers");
        assert!(
            providers.iter().any(|p| p == "CPUExecutionProvider"),
            "{providers:?}"
        );

        let again = Runtime::load(DylibRequest {
            flag: Some(&located.path),
            config: None,
        })
        .expect("same library again");
        assert!(std::ptr::eq(runtime, again));
        assert!(Runtime::get().is_some());

        let dir = tempfile::tempdir().expect("tempdir");
        let other = dir.path().join("libonnxruntime.so.1.31.1");
        std::fs::copy(&runtime.dylib, &other).expect("copy");
        let err = Runtime::load(DylibRequest {
            flag: Some(&other),
            config: None,
        })
        .expect_err("a second library");
        assert!(matches!(err, Error::AlreadyLoaded { .. }), "{err:?}");
    }

    /// Builds a shared library exporting an `OrtGetApiBase` that reports `version` and hands
    /// out an API only when `api` is true. Needs `cc`, which linking Rust on Linux needs anyway.
    fn fake_ort(dir: &Path, version: &str, api: bool) -> PathBuf {
        let source = dir.join(format!("fake-{version}-{api}.c"));
        let library = dir.join(format!("libonnxruntime.so.{version}.{api}"));
        let api = if api { "&base" } else { "0" };
        let code = format!(
            "typedef struct {{ const void *(*get_api)(unsigned); const char *(*version)(void); }} Base;\n\
             static const Base base;\n\
             static const void *get_api(unsigned v) {{ (void)v; return {api}; }}\n\
             static const char *version(void) {{ return \"{version}\"; }}\n\
             static const Base base = {{ get_api, version }};\n\
             const Base *OrtGetApiBase(void) {{ return &base; }}\n"
        );
        std::fs::write(&source, code).expect("write fake source");
        let status = Command::new("cc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(&library)
            .arg(&source)
            .status()
            .expect("run cc");
        assert!(status.success(), "cc failed");
        library
    }

    fn check_fake(path: &Path) -> Result<Checked> {
        check_library(
            path,
            &Located {
                path: path.to_path_buf(),
                source: DylibSource::Env,
            },
        )
    }

    #[test]
    fn wrong_version_is_refused_with_the_version_and_the_fix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = check_fake(&fake_ort(dir.path(), "1.20.0", true))
            .err()
            .expect("1.20");
        let message = err.to_string();
        assert!(matches!(err, Error::WrongVersion { ref version, .. } if version == "1.20.0"));
        assert!(
            message.starts_with("found ONNX Runtime 1.20.0 at "),
            "{message}"
        );
        assert!(
            message.contains("(from ORT_DYLIB_PATH) but spinewatch needs 1.31.x"),
            "{message}"
        );
        assert!(message.contains("scripts/setup-ort"), "{message}");

        let err = check_fake(&fake_ort(dir.path(), "1.32.0", true))
            .err()
            .expect("1.32");
        assert!(matches!(err, Error::WrongVersion { .. }), "{err:?}");
        let err = check_fake(&fake_ort(dir.path(), "banana", true))
            .err()
            .expect("garbage");
        assert!(matches!(err, Error::BadVersionString { .. }), "{err:?}");
        let err = check_fake(&fake_ort(dir.path(), "1.31.1", false))
            .err()
            .expect("no api");
        assert!(matches!(err, Error::ApiUnavailable { .. }), "{err:?}");

        let checked = check_fake(&fake_ort(dir.path(), "1.31.0", true)).expect("right series");
        assert_eq!(checked.version, "1.31.0");
    }

    #[test]
    fn non_library_file_is_refused_cleanly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("libonnxruntime.so.1.31.1");
        std::fs::write(&path, b"plain text").expect("write");
        let located = Located {
            path: path.clone(),
            source: DylibSource::Flag,
        };
        let err = check_library(&path, &located).err().expect("not a library");
        assert!(matches!(err, Error::Dlopen { .. }), "{err:?}");
        assert!(err.to_string().contains("scripts/setup-ort"), "{err}");
    }
}
