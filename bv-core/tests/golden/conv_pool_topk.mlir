module @jit_conv attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  func.func public @main(%arg0: tensor<1x4x4x2xf32>, %arg1: tensor<3x3x2x4xf32>) -> (tensor<3xf32> {jax.result_info = "0"}, tensor<3xi32> {jax.result_info = "1"}) {
    %0 = stablehlo.convolution(%arg0, %arg1) dim_numbers = [b, 0, 1, f]x[0, 1, i, o]->[b, 0, 1, f], window = {stride = [1, 1], pad = [[1, 1], [1, 1]], lhs_dilate = [1, 1], rhs_dilate = [1, 1]} {batch_group_count = 1 : i64, feature_group_count = 1 : i64, precision_config = [#stablehlo<precision DEFAULT>, #stablehlo<precision DEFAULT>]} : (tensor<1x4x4x2xf32>, tensor<3x3x2x4xf32>) -> tensor<1x4x4x4xf32>
    %1 = stablehlo.constant dense<0xFF800000> : tensor<f32>
    %2 = "stablehlo.reduce_window"(%0, %1) <{base_dilations = array<i64: 1, 1, 1, 1>, padding = dense<[[0, 0], [0, 0], [0, 0], [0, 0]]> : tensor<4x2xi64>, window_dilations = array<i64: 1, 1, 1, 1>, window_dimensions = array<i64: 1, 2, 2, 1>, window_strides = array<i64: 1, 2, 2, 1>}> ({
      ^bb0(%r2_a: tensor<f32>, %r2_b: tensor<f32>):
        %r2_c = stablehlo.maximum %r2_a, %r2_b : tensor<f32>
        stablehlo.return %r2_c : tensor<f32>
    }) : (tensor<1x4x4x4xf32>, tensor<f32>) -> tensor<1x2x2x4xf32>
    %3 = stablehlo.reshape %2 : (tensor<1x2x2x4xf32>) -> tensor<16xf32>
    %4 = stablehlo.iota dim = 0 : tensor<16xi32>
    %5:2 = "stablehlo.sort"(%3, %4) <{dimension = 0 : i64, is_stable = true}> ({
      ^bb0(%r5_a0: tensor<f32>, %r5_b0: tensor<f32>, %r5_a1: tensor<i32>, %r5_b1: tensor<i32>):
        %r5_lt0 = stablehlo.compare GT, %r5_a0, %r5_b0, TOTALORDER : (tensor<f32>, tensor<f32>) -> tensor<i1>
        stablehlo.return %r5_lt0 : tensor<i1>
    }) : (tensor<16xf32>, tensor<16xi32>) -> (tensor<16xf32>, tensor<16xi32>)
    %6 = stablehlo.slice %5#0 [0:3] : (tensor<16xf32>) -> tensor<3xf32>
    %7 = stablehlo.slice %5#1 [0:3] : (tensor<16xi32>) -> tensor<3xi32>
    return %6, %7 : tensor<3xf32>, tensor<3xi32>
  }
}
