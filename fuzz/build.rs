//! Declares the `fuzzing` cfg that cargo-fuzz sets, so stable builds don't warn about it.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(fuzzing)");
}
