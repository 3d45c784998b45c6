module @jit_attention attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  func.func public @main(%arg0: tensor<2x3x4x8xbf16>, %arg1: tensor<2x3x4x8xbf16>) -> (tensor<2x4x3x3xf32> {jax.result_info = ""}) {
    %0 = stablehlo.dot_general %arg0, %arg1, batching_dims = [0, 2] x [0, 2], contracting_dims = [3] x [3], precision = [DEFAULT, DEFAULT] : (tensor<2x3x4x8xbf16>, tensor<2x3x4x8xbf16>) -> tensor<2x4x3x3xbf16>
    %1 = stablehlo.constant dense<0.125> : tensor<bf16>
    %2 = stablehlo.broadcast_in_dim %1, dims = [] : (tensor<bf16>) -> tensor<2x4x3x3xbf16>
    %3 = stablehlo.multiply %0, %2 : tensor<2x4x3x3xbf16>
    %4 = stablehlo.convert %3 : (tensor<2x4x3x3xbf16>) -> tensor<2x4x3x3xf32>
    %5 = stablehlo.constant dense<0xFF800000> : tensor<f32>
    %6 = stablehlo.reduce(%4 init: %5) applies stablehlo.maximum across dimensions = [3] : (tensor<2x4x3x3xf32>, tensor<f32>) -> tensor<2x4x3xf32>
    %7 = stablehlo.reshape %6 : (tensor<2x4x3xf32>) -> tensor<2x4x3x1xf32>
    %8 = stablehlo.is_finite %7 : (tensor<2x4x3x1xf32>) -> tensor<2x4x3x1xi1>
    %9 = stablehlo.constant dense<0.0> : tensor<f32>
    %10 = stablehlo.broadcast_in_dim %9, dims = [] : (tensor<f32>) -> tensor<2x4x3x1xf32>
    %11 = stablehlo.select %8, %7, %10 : tensor<2x4x3x1xi1>, tensor<2x4x3x1xf32>
    %12 = stablehlo.broadcast_in_dim %11, dims = [0, 1, 2, 3] : (tensor<2x4x3x1xf32>) -> tensor<2x4x3x3xf32>
    %13 = stablehlo.subtract %4, %12 : tensor<2x4x3x3xf32>
    %14 = stablehlo.exponential %13 : tensor<2x4x3x3xf32>
    %15 = stablehlo.constant dense<0.0> : tensor<f32>
    %16 = stablehlo.reduce(%14 init: %15) applies stablehlo.add across dimensions = [3] : (tensor<2x4x3x3xf32>, tensor<f32>) -> tensor<2x4x3xf32>
    %17 = stablehlo.reshape %16 : (tensor<2x4x3xf32>) -> tensor<2x4x3x1xf32>
    %18 = stablehlo.broadcast_in_dim %17, dims = [0, 1, 2, 3] : (tensor<2x4x3x1xf32>) -> tensor<2x4x3x3xf32>
    %19 = stablehlo.divide %14, %18 : tensor<2x4x3x3xf32>
    return %19 : tensor<2x4x3x3xf32>
  }
}
