"""tf.data running big_vision's pp string on the benchmark dataset, as big_vision does.

Reads the directory written by `cargo bench --bench pipeline -- make` through TFDS's own
`builder_from_directory` (so it also checks TFDS opens what bv writes), then
big_vision's `make_for_train` chain: shuffle, repeat, map(pp), batch(drop_remainder), prefetch.
The pp ops are big_vision's code for `decode_jpeg_and_inception_crop(224)|flip_lr|
value_range(-1, 1)` (big_vision/pp/ops_image.py, inlined).
Usage: python pipeline_tf.py DATA_DIR [BATCHES]
"""
import json
import sys
import time

import tensorflow as tf
import tensorflow_datasets as tfds

BATCH = 64


def decode_jpeg_and_inception_crop(image_data, size=224, area_min=5, area_max=100,
                                   ratio_min=0.75, ratio_max=1.33):
    shape = tf.image.extract_jpeg_shape(image_data)
    begin, crop_size, _ = tf.image.sample_distorted_bounding_box(
        shape, tf.zeros([0, 0, 4], tf.float32),
        area_range=(area_min / 100, area_max / 100),
        aspect_ratio_range=(ratio_min, ratio_max),
        min_object_covered=0, use_image_if_no_bounding_boxes=True)
    offset_y, offset_x, _ = tf.unstack(begin)
    target_height, target_width, _ = tf.unstack(crop_size)
    crop_window = tf.stack([offset_y, offset_x, target_height, target_width])
    image = tf.image.decode_and_crop_jpeg(image_data, crop_window, channels=3)
    dtype = image.dtype
    image = tf.image.resize(image, (size, size), method="bilinear", antialias=False)
    return tf.cast(tf.clip_by_value(image, dtype.min, dtype.max), dtype)


def pp(data):
    image = decode_jpeg_and_inception_crop(data["image"])
    image = tf.image.random_flip_left_right(image)
    image = tf.cast(image, tf.float32)
    image = (image - 0.0) / (255.0 - 0.0)
    image = -1.0 + image * (1.0 - (-1.0))
    return {"image": image}


def main():
    data_dir = sys.argv[1]
    batches = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    builder = tfds.builder_from_directory(f"{data_dir}/bv_jpeg_bench/1.0.0")
    ds = builder.as_dataset(
        split="train", shuffle_files=True,
        decoders={"image": tfds.decode.SkipDecoding()},
        read_config=tfds.ReadConfig(skip_prefetch=True, try_autocache=False))
    options = tf.data.Options()
    options.threading.private_threadpool_size = 48
    options.threading.max_intra_op_parallelism = 1
    options.experimental_optimization.inject_prefetch = False
    ds = ds.with_options(options)
    ds = ds.shuffle(1000).repeat().map(pp, num_parallel_calls=100)
    ds = ds.batch(BATCH, drop_remainder=True).prefetch(2)
    it = iter(ds)
    for _ in range(3):
        next(it)
    t, cpu = time.perf_counter(), time.process_time()
    for _ in range(batches):
        next(it)
    secs = time.perf_counter() - t
    cpu_ms = (time.process_time() - cpu) * 1e3 / (batches * BATCH)
    print(json.dumps({"impl": "tf.data", "tensorflow": tf.__version__, "batches": batches,
                      "batch_size": BATCH, "seconds": secs,
                      "images_per_sec": batches * BATCH / secs, "cpu_ms_per_image": cpu_ms}))


if __name__ == "__main__":
    main()
