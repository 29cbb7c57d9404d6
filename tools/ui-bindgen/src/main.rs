//! `ui-bindgen INPUT.wasm OUT_DIR NAME`: what `wasm-bindgen --target web --no-typescript
//! --out-dir OUT_DIR --out-name NAME INPUT.wasm` does, for scripts/build-ui.sh.
//! `ui-bindgen --version` prints the wasm-bindgen version it embeds.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [flag] if flag == "--version" => {
            println!("ui-bindgen {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        [input, out_dir, name] => match bindgen(input, out_dir, name) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ui-bindgen: {e}");
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!("usage: ui-bindgen INPUT.wasm OUT_DIR NAME | --version");
            ExitCode::from(2)
        }
    }
}

fn bindgen(input: &str, out_dir: &str, name: &str) -> Result<(), Box<dyn std::error::Error>> {
    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(input)
        .web(true)?
        .typescript(false)
        // As the CLI: init() without an argument finds the wasm beside the JS.
        .omit_default_module_path(false)
        .out_name(name)
        .generate(out_dir)?;
    Ok(())
}
