use bv_core::prim;
use bv_core::{jit, Array, Tensor};

#[test]
fn add_runs() {
    let f = jit(|(x, y): (Tensor, Tensor)| prim::add(&x, &y));
    let x = Array::from_slice(&[1f32, 2.0, 3.0], &[3]).unwrap();
    let y = Array::from_slice(&[10f32, 20.0, 30.0], &[3]).unwrap();
    println!("{}", f.lower(&(x.spec(), y.spec())).unwrap().text);
    let z = f.call(&(x, y)).unwrap();
    assert_eq!(z.to_vec::<f32>().unwrap(), vec![11.0, 22.0, 33.0]);
}
