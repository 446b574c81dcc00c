"""ResNet-50 v2 face recognizers: ``resnet50`` (plain) and ``resnet50-occ`` (trained with
synthetic occlusions), trained here with ``occbench train``; registered as recognizers."""
