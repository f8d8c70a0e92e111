"""Periodic validation during training: NLL and PU21-PSNR on the held-out split.

Inputs are synthesised once with fixed cameras (sRGB and filmic curves, 5 % clipped pixels) at a
small size so validation costs seconds, and the same numbers are comparable across the run.
"""
from __future__ import annotations

import numpy as np
import torch

from engine.geometry import window_planes

from .camera import synthesize
from .data import load_images
from .losses import bits_per_dim
from .metrics import pu21_psnr
from .target import srgb_to_linear


class Validator:
    def __init__(self, data_dirs, held_out: set[str], cfg, device):
        self.cfg, self.device = cfg, device
        stride = cfg.model.stride
        images = load_images(data_dirs, include=held_out, max_width=cfg.val_width, min_size=2 * stride)
        self.samples = []
        for i, im in enumerate(images):
            h, w = (im.pixels.shape[0] // stride) * stride, (im.pixels.shape[1] // stride) * stride
            px = im.pixels[:h, :w]
            for j, curve in enumerate(("srgb", "filmic")):
                s = synthesize(px, np.random.default_rng([1234, i, j]), clip_fraction=0.05, curve=curve,
                               jpeg_quality=None)
                x = torch.from_numpy(s.ldr.astype(np.float32).transpose(2, 0, 1)[None] / 255.0)
                tgt = torch.from_numpy(np.ascontiguousarray(s.target.transpose(2, 0, 1)[None]))
                if cfg.model.encoder.geometry:  # the graph's input, as the engine feeds it
                    planes = window_planes(0, h, w, im.pixels.shape[0], im.panorama)
                    x = torch.cat([x, torch.from_numpy(planes.transpose(2, 0, 1)[None].copy())], dim=1)
                self.samples.append((x.to(device), tgt.to(device)))
        self.naive_psnr = float(np.mean([
            pu21_psnr(_hwc(srgb_to_linear(x[:, :3])), _hwc(t))  # the LDR: the input's first three channels
            for x, t in self.samples]))

    @torch.no_grad()
    def __call__(self, model) -> dict:
        model.eval()
        nll, psnr = [], []
        gen = torch.Generator().manual_seed(0)
        for x, tgt in self.samples:
            ldr, geometry = model.split_input(x)
            target = model.to_target(tgt, ldr)
            latents, logdet = model.encode(ldr, target, geometry=geometry)
            nll.append(float(bits_per_dim(model.log_prob(latents, logdet), target[0].numel())))
            pred = model.sample(x, self.cfg.inference_temperature, gen)
            psnr.append(pu21_psnr(_hwc(pred), _hwc(tgt)))
        return {"val_nll_bpd": float(np.mean(nll)), "val_pu21_psnr": float(np.mean(psnr)),
                "naive_pu21_psnr": self.naive_psnr}


def _hwc(t: torch.Tensor) -> np.ndarray:
    return t[0].permute(1, 2, 0).cpu().numpy()
