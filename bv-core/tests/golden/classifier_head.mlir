module @jit_head attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  func.func public @main(%arg0: tensor<3x5xf32>, %arg1: tensor<3xi32>) -> (tensor<f32> {jax.result_info = "0"}, tensor<3xi32> {jax.result_info = "1"}) {
    %0 = stablehlo.broadcast_in_dim %arg1, dims = [0] : (tensor<3xi32>) -> tensor<3x5xi32>
    %1 = stablehlo.iota dim = 1 : tensor<3x5xi32>
    %2 = stablehlo.compare EQ, %0, %1, SIGNED : (tensor<3x5xi32>, tensor<3x5xi32>) -> tensor<3x5xi1>
    %3 = stablehlo.convert %2 : (tensor<3x5xi1>) -> tensor<3x5xf32>
    %4 = stablehlo.constant dense<0xFF800000> : tensor<f32>
    %5 = stablehlo.reduce(%arg0 init: %4) applies stablehlo.maximum across dimensions = [1] : (tensor<3x5xf32>, tensor<f32>) -> tensor<3xf32>
    %6 = stablehlo.reshape %5 : (tensor<3xf32>) -> tensor<3x1xf32>
    %7 = stablehlo.is_finite %6 : (tensor<3x1xf32>) -> tensor<3x1xi1>
    %8 = stablehlo.constant dense<0.0> : tensor<f32>
    %9 = stablehlo.broadcast_in_dim %8, dims = [] : (tensor<f32>) -> tensor<3x1xf32>
    %10 = stablehlo.select %7, %6, %9 : tensor<3x1xi1>, tensor<3x1xf32>
    %11 = stablehlo.broadcast_in_dim %10, dims = [0, 1] : (tensor<3x1xf32>) -> tensor<3x5xf32>
    %12 = stablehlo.subtract %arg0, %11 : tensor<3x5xf32>
    %13 = stablehlo.exponential %12 : tensor<3x5xf32>
    %14 = stablehlo.constant dense<0.0> : tensor<f32>
    %15 = stablehlo.reduce(%13 init: %14) applies stablehlo.add across dimensions = [1] : (tensor<3x5xf32>, tensor<f32>) -> tensor<3xf32>
    %16 = stablehlo.reshape %15 : (tensor<3xf32>) -> tensor<3x1xf32>
    %17 = stablehlo.log %16 : tensor<3x1xf32>
    %18 = stablehlo.broadcast_in_dim %17, dims = [0, 1] : (tensor<3x1xf32>) -> tensor<3x5xf32>
    %19 = stablehlo.subtract %12, %18 : tensor<3x5xf32>
    %20 = stablehlo.multiply %3, %19 : tensor<3x5xf32>
    %21 = stablehlo.constant dense<0.0> : tensor<f32>
    %22 = stablehlo.reduce(%20 init: %21) applies stablehlo.add across dimensions = [1] : (tensor<3x5xf32>, tensor<f32>) -> tensor<3xf32>
    %23 = stablehlo.constant dense<0.0> : tensor<f32>
    %24 = stablehlo.reduce(%22 init: %23) applies stablehlo.add across dimensions = [0] : (tensor<3xf32>, tensor<f32>) -> tensor<f32>
    %25 = stablehlo.constant dense<3.0> : tensor<f32>
    %26 = stablehlo.divide %24, %25 : tensor<f32>
    %27 = stablehlo.negate %26 : tensor<f32>
    %28 = stablehlo.iota dim = 1 : tensor<3x5xi32>
    %29 = stablehlo.constant dense<0xFF800000> : tensor<f32>
    %30 = stablehlo.constant dense<0> : tensor<i32>
    %31:2 = "stablehlo.reduce"(%arg0, %28, %29, %30) <{dimensions = array<i64: 1>}> ({
      ^bb0(%r31_av: tensor<f32>, %r31_ai: tensor<i32>, %r31_bv: tensor<f32>, %r31_bi: tensor<i32>):
        %r31_better = stablehlo.compare GT, %r31_av, %r31_bv, FLOAT : (tensor<f32>, tensor<f32>) -> tensor<i1>
        %r31_anan = stablehlo.compare NE, %r31_av, %r31_av, FLOAT : (tensor<f32>, tensor<f32>) -> tensor<i1>
        %r31_bnan = stablehlo.compare NE, %r31_bv, %r31_bv, FLOAT : (tensor<f32>, tensor<f32>) -> tensor<i1>
        %r31_eq = stablehlo.compare EQ, %r31_av, %r31_bv, FLOAT : (tensor<f32>, tensor<f32>) -> tensor<i1>
        %r31_lower = stablehlo.compare LT, %r31_ai, %r31_bi, SIGNED : (tensor<i32>, tensor<i32>) -> tensor<i1>
        %r31_bnum = stablehlo.not %r31_bnan : tensor<i1>
        %r31_nanwin = stablehlo.and %r31_anan, %r31_bnum : tensor<i1>
        %r31_pickv = stablehlo.or %r31_better, %r31_nanwin : tensor<i1>
        %r31_bothnan = stablehlo.and %r31_anan, %r31_bnan : tensor<i1>
        %r31_same = stablehlo.or %r31_eq, %r31_bothnan : tensor<i1>
        %r31_tie = stablehlo.and %r31_same, %r31_lower : tensor<i1>
        %r31_picki = stablehlo.or %r31_pickv, %r31_tie : tensor<i1>
        %r31_v = stablehlo.select %r31_pickv, %r31_av, %r31_bv : tensor<i1>, tensor<f32>
        %r31_i = stablehlo.select %r31_picki, %r31_ai, %r31_bi : tensor<i1>, tensor<i32>
        stablehlo.return %r31_v, %r31_i : tensor<f32>, tensor<i32>
    }) : (tensor<3x5xf32>, tensor<3x5xi32>, tensor<f32>, tensor<i32>) -> (tensor<3xf32>, tensor<3xi32>)
    return %27, %31#1 : tensor<f32>, tensor<3xi32>
  }
}
