//! Bad input gives a readable error, never a crash.

use std::io::Write;

use bv_core::pjrt::{Client, CompileOptions, Error, Plugin};

const ADD: &str = r#"
func.func public @main(%x: tensor<2x3xf32>, %y: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %z = stablehlo.add %x, %y : tensor<2x3xf32>
  return %z : tensor<2x3xf32>
}
"#;

#[test]
fn malformed_program_reports_the_mlir_diagnostic() {
    let client = Client::cpu().unwrap();
    let bad = ADD.replace(
        "stablehlo.add %x, %y : tensor<2x3xf32>",
        "stablehlo.add %x, %w : tensor<2x3xf32>",
    );
    let err = client
        .compile(&bad, &CompileOptions::default())
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            Error::Plugin {
                call: "PJRT_Client_Compile",
                ..
            }
        ),
        "{msg}"
    );
    // The parser's diagnostic comes through verbatim, with line and column of `%w`.
    assert!(
        msg.contains("-:3:26: error: use of undeclared SSA value name"),
        "{msg}"
    );
}

#[test]
fn type_error_in_program_is_reported() {
    let client = Client::cpu().unwrap();
    let bad = ADD.replace(
        "%z = stablehlo.add %x, %y : tensor<2x3xf32>",
        "%z = stablehlo.add %x, %y : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<3x2xf32>",
    );
    let msg = client
        .compile(&bad, &CompileOptions::default())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("PJRT_Client_Compile failed"), "{msg}");
}

#[test]
fn wrong_arguments_are_named() {
    let client = Client::cpu().unwrap();
    let dev = &client.addressable_devices()[0];
    let exe = client.compile(ADD, &CompileOptions::default()).unwrap();
    let x = client.buffer_from_host(&[1f32; 6], &[2, 3], dev).unwrap();

    let err = exe.execute(&[&x]).unwrap_err().to_string();
    assert_eq!(err, "execute: the program takes 2 arguments, got 1");

    let wrong_shape = client.buffer_from_host(&[1f32; 6], &[3, 2], dev).unwrap();
    let err = exe.execute(&[&x, &wrong_shape]).unwrap_err().to_string();
    assert_eq!(
        err,
        "execute: argument 1 is float32[3, 2], the program expects float32[2, 3]"
    );

    let wrong_type = client.buffer_from_host(&[1i32; 6], &[2, 3], dev).unwrap();
    let err = exe.execute(&[&wrong_type, &x]).unwrap_err().to_string();
    assert_eq!(
        err,
        "execute: argument 0 is int32[2, 3], the program expects float32[2, 3]"
    );
}

#[test]
fn donated_argument_cannot_be_reused() {
    let client = Client::cpu().unwrap();
    let dev = &client.addressable_devices()[0];
    let donating = ADD.replace(
        "%x: tensor<2x3xf32>,",
        "%x: tensor<2x3xf32> {tf.aliasing_output = 0 : i32},",
    );
    let exe = client
        .compile(&donating, &CompileOptions::default())
        .unwrap();
    let x = client.buffer_from_host(&[1f32; 6], &[2, 3], dev).unwrap();
    let y = client.buffer_from_host(&[2f32; 6], &[2, 3], dev).unwrap();
    let out = exe.execute(&[&x, &y]).unwrap();
    assert_eq!(out[0].to_vec::<f32>().unwrap(), vec![3f32; 6]);
    assert!(x.is_deleted(), "a donated buffer is consumed");
    let err = exe.execute(&[&x, &y]).unwrap_err().to_string();
    assert_eq!(
        err,
        "execute: argument 0 was donated to an earlier call (or deleted) and can no longer be used"
    );
}

#[test]
fn missing_plugin_file() {
    let err = Plugin::load("/nonexistent/dir/pjrt_plugin.so").unwrap_err();
    assert!(matches!(err, Error::Load { .. }));
    assert_eq!(
        err.to_string(),
        "cannot load PJRT plugin /nonexistent/dir/pjrt_plugin.so: No such file or directory (os error 2)"
    );
}

#[test]
fn file_that_is_not_a_plugin() {
    let dir = std::env::temp_dir().join(format!("bv-not-a-plugin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = dir.join("notes.so");
    std::fs::File::create(&text)
        .unwrap()
        .write_all(b"not an ELF file")
        .unwrap();
    let err = Plugin::load(&text).unwrap_err();
    assert!(matches!(err, Error::NotAPlugin { .. }), "{err}");
    assert!(err.to_string().contains("is not a PJRT plugin"), "{err}");

    // A real shared library without GetPjrtApi.
    let libc = [
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists());
    if let Some(lib) = libc {
        let err = Plugin::load(lib).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{} is not a PJRT plugin: it exports no GetPjrtApi symbol",
                std::fs::canonicalize(lib).unwrap().display()
            )
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
