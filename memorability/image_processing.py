"""The image processor that travels with the model: the stock transformers class `microsoft/resnet-50` ships.

A stock class (not a custom one) means `AutoImageProcessor.from_pretrained(model_dir)` works anywhere, without
remote code. We pick the torchvision-backed `ConvNextImageProcessor` on purpose: it is the faster of the two
transformers offers, and torchvision is a dependency anyway.
"""

from transformers import ConvNextImageProcessor
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, PILImageResampling

DEFAULT_IMAGE_SIZE = 224


def make_image_processor(
    image_size: int = DEFAULT_IMAGE_SIZE,
    mean: tuple[float, ...] = IMAGENET_DEFAULT_MEAN,
    std: tuple[float, ...] = IMAGENET_DEFAULT_STD,
) -> ConvNextImageProcessor:
    """Resize the short side to image_size / 0.875, centre-crop image_size², normalise by `mean`/`std` (ImageNet's,
    as resnet-50; a pretrained CLIP or SigLIP backbone brings its own: `presets.backbone_processor`)."""
    return ConvNextImageProcessor(
        size={"shortest_edge": image_size},
        crop_pct=0.875,
        resample=PILImageResampling.BICUBIC,
        do_resize=True,
        do_rescale=True,
        do_normalize=True,
        image_mean=list(mean),
        image_std=list(std),
    )


def processor_image_size(processor) -> int:
    """The (square) input size a processor produces: its centre crop where it crops to a size (CLIP's, DINOv2's), else
    its resized height (SigLIP's) or short side (ours, which crops a fixed fraction of it)."""
    crop = getattr(processor, "crop_size", None)
    if crop is not None and getattr(processor, "do_center_crop", False) and crop.height:
        return int(crop.height)
    return int(processor.size.height or processor.size.shortest_edge)
