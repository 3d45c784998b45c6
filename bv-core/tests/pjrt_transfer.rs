//! Host → device → host round trips for every element type, ranks 0 to 6 and zero-size
//! shapes; device-to-device copies; readiness events.

use std::sync::mpsc;

use bv_core::pjrt::{Client, Error};
use bv_core::DType;
use rand::{Rng, SeedableRng};

/// Random bytes valid for `dtype` (booleans are 0 or 1).
fn random_bytes(rng: &mut impl Rng, dtype: DType, n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n * dtype.size_in_bytes()];
    rng.fill(bytes.as_mut_slice());
    if dtype == DType::Bool {
        bytes.iter_mut().for_each(|b| *b &= 1);
    }
    bytes
}

const SHAPES: [&[i64]; 10] = [
    &[],
    &[7],
    &[3, 5],
    &[2, 3, 4],
    &[2, 1, 3, 2],
    &[1, 2, 3, 2, 2],
    &[2, 2, 1, 2, 3, 2],
    &[0],
    &[4, 0, 3],
    &[2, 0, 1, 1, 0, 3],
];

#[test]
fn every_dtype_and_rank_round_trips_exactly() {
    let client = Client::cpu().unwrap();
    let dev = &client.addressable_devices()[0];
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for dtype in DType::ALL {
        for dims in SHAPES {
            let n: i64 = dims.iter().product();
            let host = random_bytes(&mut rng, dtype, n as usize);
            let buf = client
                .buffer_from_host_bytes(&host, dtype, dims, dev)
                .unwrap();
            assert_eq!(buf.dtype(), dtype);
            assert_eq!(buf.dims(), dims);
            assert_eq!(buf.to_host_bytes().unwrap(), host, "{dtype}{dims:?}");
            // An owned transfer returns at once and must deliver the same bytes.
            let owned = client
                .buffer_from_host_owned(host.clone(), dtype, dims, dev)
                .unwrap();
            assert_eq!(
                owned.to_host_bytes().unwrap(),
                host,
                "owned {dtype}{dims:?}"
            );
        }
    }
}

#[test]
fn typed_round_trips_and_type_checks() {
    let client = Client::cpu().unwrap();
    let dev = &client.addressable_devices()[0];
    let v = [half::bf16::from_f32(1.5), half::bf16::from_f32(-2.25)];
    let buf = client.buffer_from_host(&v, &[2], dev).unwrap();
    assert_eq!(buf.to_vec::<half::bf16>().unwrap(), v);
    assert!(matches!(
        buf.to_vec::<f32>(),
        Err(Error::ElementTypeMismatch { .. })
    ));
    let flags = [true, false, true];
    let b = client.buffer_from_host(&flags, &[3], dev).unwrap();
    assert_eq!(b.to_vec::<bool>().unwrap(), flags);
    let scalar = client.buffer_from_host(&[42i64], &[], dev).unwrap();
    assert_eq!(scalar.to_vec::<i64>().unwrap(), vec![42]);
}

#[test]
fn host_size_must_match_shape() {
    let client = Client::cpu().unwrap();
    let dev = &client.addressable_devices()[0];
    let err = client
        .buffer_from_host(&[1f32; 5], &[2, 3], dev)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "buffer_from_host: a float32[2, 3] array needs 24 bytes, the host data has 20"
    );
    let err = client
        .buffer_from_host(&[1f32; 5], &[-1, 5], dev)
        .unwrap_err();
    assert!(err.to_string().contains("negative"), "{err}");
}

#[test]
fn copies_between_devices() {
    let client = Client::cpu_with_devices(2).unwrap();
    let devs = client.addressable_devices();
    let src = client
        .buffer_from_host(&[1i32, 2, 3, 4], &[2, 2], &devs[0])
        .unwrap();
    let dst = src.copy_to_device(&devs[1]).unwrap();
    assert_eq!(dst.device().unwrap(), devs[1]);
    assert_eq!(src.device().unwrap(), devs[0]);
    assert_eq!(dst.to_vec::<i32>().unwrap(), vec![1, 2, 3, 4]);
    assert!(dst.on_device_size_in_bytes().unwrap() >= 16);
}

#[test]
fn readiness_is_observable_without_blocking() {
    let client = Client::cpu().unwrap();
    let dev = &client.addressable_devices()[0];
    let buf = client.buffer_from_host(&[0u8; 1024], &[1024], dev).unwrap();
    let event = buf.ready_event().unwrap();
    let (tx, rx) = mpsc::channel();
    event
        .on_ready(move |r| tx.send(r.is_ok()).unwrap())
        .unwrap();
    assert!(rx.recv().unwrap());
    assert!(event.is_ready().unwrap());
    buf.block_until_ready().unwrap();
}

#[test]
fn cpu_buffers_can_be_read_in_place() {
    let client = Client::cpu().unwrap();
    let dev = &client.addressable_devices()[0];
    let data: Vec<i16> = (0..60).map(|i| i * 3 - 7).collect();
    let buf = client.buffer_from_host(&data, &[3, 4, 5], dev).unwrap();
    let view = buf
        .host_view()
        .unwrap()
        .expect("CPU buffers are host memory");
    let expected: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(&view[..], expected.as_slice());
    drop(view);
    let empty = client.buffer_from_host::<f32>(&[], &[0, 4], dev).unwrap();
    assert!(empty.host_view().unwrap().unwrap().is_empty());
}
