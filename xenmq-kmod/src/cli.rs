//! The arguments of `xenmq kmod build` (and of `xenmq-kmod build`): one
//! clap definition for both, turned into a [`Build`] by [`BuildArgs::build`].

use std::path::PathBuf;

use crate::{headers, Build, Module, Result, Role, DEFAULT_CACHE};

/// `xenmq kmod VERB`.
#[derive(Debug, clap::Subcommand)]
pub enum Verb {
    /// Build a driver crate into a Linux kernel module (.ko)
    Build(BuildArgs),
}

/// `xenmq kmod build`: a driver crate and a role into a module.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("role").required(true).args(["backend", "frontend"])))]
pub struct BuildArgs {
    /// The driver crate's directory (holding its Cargo.toml)
    #[arg(long = "crate", value_name = "DIR")]
    pub krate: PathBuf,
    /// Build a backend module; TYPE is the driver's type in the crate (back::Mirror)
    #[arg(long, value_name = "TYPE")]
    pub backend: Option<String>,
    /// Build a frontend module; TYPE is the driver's type in the crate
    #[arg(long, value_name = "TYPE")]
    pub frontend: Option<String>,
    /// A function of the crate run once per connection with the client (frontend only)
    #[arg(long, value_name = "FN", conflicts_with = "backend")]
    pub on_connect: Option<String>,
    /// The xenbus device type the module registers for
    #[arg(long, value_name = "NAME")]
    pub devtype: String,
    /// The module's name [default: xenmq_DEVTYPE_back or xenmq_DEVTYPE_front]
    #[arg(long, value_name = "MOD")]
    pub name: Option<String>,
    /// A kernel build tree to build against
    #[arg(long, value_name = "DIR", conflicts_with = "release")]
    pub kdir: Option<PathBuf>,
    /// The Debian kernel release whose headers are fetched [default: bookworm's current 6.1]
    #[arg(long, value_name = "6.1.0-N-amd64")]
    pub release: Option<String>,
    /// Where fetched headers and builds are kept
    #[arg(long, value_name = "DIR", default_value = DEFAULT_CACHE)]
    pub cache: PathBuf,
    /// Where the build happens and the .ko is left [default: CACHE/build/MOD]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

impl BuildArgs {
    /// What to build: the kernel's headers found or fetched, the names
    /// defaulted.
    pub fn build(&self) -> Result<Build> {
        let (role, driver) = match (&self.backend, &self.frontend) {
            (Some(t), _) => (Role::Backend, t.clone()),
            (None, Some(t)) => (Role::Frontend, t.clone()),
            (None, None) => unreachable!("clap requires --backend or --frontend"),
        };
        let end = match role {
            Role::Backend => "back",
            Role::Frontend => "front",
        };
        let name = self
            .name
            .clone()
            .unwrap_or_else(|| format!("xenmq_{}_{end}", self.devtype.replace('-', "_")));
        let kernel = match &self.kdir {
            Some(k) => headers::given(k)?,
            None => {
                let release = match &self.release {
                    Some(r) => r.clone(),
                    None => headers::debian_release()?,
                };
                headers::debian(&self.cache, &release)?
            }
        };
        let out = self
            .out
            .clone()
            .unwrap_or_else(|| self.cache.join("build").join(&name));
        Ok(Build {
            krate: self.krate.clone(),
            driver,
            role,
            on_connect: self.on_connect.clone(),
            devtype: self.devtype.clone(),
            name,
            kernel,
            out,
        })
    }
}

/// What a build prints: the module and the panic sites left in it.
pub fn report(m: &Module) {
    println!("module: {}", m.ko.display());
    println!(
        "panic sites in the Rust object: {} (relocations referring to core::panicking::* \
         and the other panic entry points)",
        m.panics.total()
    );
    for (sym, n) in &m.panics.by_symbol {
        println!("  {n:4}  {sym}");
    }
}
