"""The models of bench/compare.py's ResNet-20 and MobileNet workloads, built the same way in
every framework: one Keras-API builder serves cnnkit and Keras 3 (TensorFlow), given the
module (`cnnkit` or `keras`); PyTorch gets the same layers as nn.Modules, NCHW.

resnet20   Keras' CIFAR-10 ResNet v1 of depth 20 (keras.io, "Trains a ResNet on the CIFAR10
           dataset"): a 3x3 convolution of 16 filters, then 3 stages of 3 residual blocks (16, 32,
           64 filters; the first block of stages 2 and 3 halves the image with stride 2 and a
           1x1 strided convolution on the shortcut). Block: conv3x3-BN-ReLU-conv3x3-BN, Add,
           ReLU. Then GlobalAveragePooling2D and Dense(10, softmax). Convolutions with biases,
           he_normal kernels (no weight regularizer: the speed comparison leaves it out).
mobilenet  a small MobileNet v1 for 32x32 images: conv3x3(32)-BN-ReLU, then five depthwise-
           separable blocks (DepthwiseConv2D 3x3-BN-ReLU-Conv2D 1x1-BN-ReLU) of 64, 128 (stride
           2), 128, 256 (stride 2), 256 filters, GlobalAveragePooling2D, Dense(10, softmax).
           Convolutions without biases (BN follows each), as in keras.applications.MobileNet.
"""

RESNET_STAGES = ((16, 1), (32, 2), (64, 2))  # (filters, stride of the stage's first block)
MOBILENET_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1))


def resnet20(keras, preprocess=()):
    """preprocess: layers applied to the input first (bench/resnet_recipe.py's augmentation)."""
    L = keras.layers

    def conv(x, filters, kernel=3, strides=1):
        return L.Conv2D(filters, kernel, strides=strides, padding="same",
                        kernel_initializer="he_normal")(x)

    inputs = x = keras.Input((32, 32, 3))
    for layer in preprocess:
        x = layer(x)
    x = L.Activation("relu")(L.BatchNormalization()(conv(x, 16)))
    for filters, stride in RESNET_STAGES:
        for block in range(3):
            strides = stride if block == 0 else 1
            y = L.Activation("relu")(L.BatchNormalization()(conv(x, filters, strides=strides)))
            y = L.BatchNormalization()(conv(y, filters))
            if strides != 1:
                x = conv(x, filters, kernel=1, strides=strides)
            x = L.Activation("relu")(L.Add()([x, y]))
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, L.Dense(10, activation="softmax")(x))


def mobilenet(keras):
    L = keras.layers
    inputs = keras.Input((32, 32, 3))
    x = L.Conv2D(32, 3, padding="same", use_bias=False)(inputs)
    x = L.Activation("relu")(L.BatchNormalization()(x))
    for filters, stride in MOBILENET_BLOCKS:
        x = L.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(x)
        x = L.Activation("relu")(L.BatchNormalization()(x))
        x = L.Conv2D(filters, 1, use_bias=False)(x)
        x = L.Activation("relu")(L.BatchNormalization()(x))
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, L.Dense(10, activation="softmax")(x))


KERAS_BUILDERS = {"resnet": resnet20, "mobile": mobilenet}


def torch_models(torch):
    """{name: a function making the PyTorch twin of that model} (logits out: the softmax is
    fused into the loss, as cnnkit and Keras fuse it)."""
    nn = torch.nn
    # Keras' BatchNormalization defaults: momentum 0.99 (PyTorch counts 1 - momentum), eps 1e-3.
    bn = lambda c: nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)  # noqa: E731

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, padding=1)
            self.bn1 = bn(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, padding=1)
            self.bn2 = bn(cout)
            self.shortcut = nn.Conv2d(cin, cout, 1, stride) if stride != 1 else nn.Identity()

        def forward(self, x):
            y = torch.relu(self.bn1(self.conv1(x)))
            return torch.relu(self.shortcut(x) + self.bn2(self.conv2(y)))

    def resnet():
        layers, cin = [nn.Conv2d(3, 16, 3, padding=1), bn(16), nn.ReLU()], 16
        for filters, stride in RESNET_STAGES:
            for block in range(3):
                layers.append(Block(cin, filters, stride if block == 0 else 1))
                cin = filters
        model = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))
        for m in model.modules():  # he_normal kernels, zero biases, as the Keras model
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
                nn.init.zeros_(m.bias)
        return model

    def mobile():
        layers, cin = [nn.Conv2d(3, 32, 3, padding=1, bias=False), bn(32), nn.ReLU()], 32
        for filters, stride in MOBILENET_BLOCKS:
            layers += [nn.Conv2d(cin, cin, 3, stride, padding=1, groups=cin, bias=False),
                       bn(cin), nn.ReLU(), nn.Conv2d(cin, filters, 1, bias=False), bn(filters),
                       nn.ReLU()]
            cin = filters
        return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 10))

    return {"resnet": resnet, "mobile": mobile}
