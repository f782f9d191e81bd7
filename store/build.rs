//! `sqlx::migrate!` embeds `migrations/` at compile time; a new migration file must rebuild
//! the crate (cargo does not watch a directory a macro reads otherwise).
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
