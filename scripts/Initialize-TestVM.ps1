#Requires -Version 5.1
<#
.SYNOPSIS
    Prepares a Windows 10/11 x64 test VM for the TestDriver fast-mutex deadlock demo.

.DESCRIPTION
    Does, in this order, only what is not done yet:

      1. Checks that PowerShell runs elevated and that Windows is 64-bit.
      2. Turns test signing on ("bcdedit /set testsigning on") unless it is active in this boot
         ("TESTSIGNING" in the loader's SystemStartOptions) or set for the next one (the BCD
         element 0x16000049 of {current}, through WMI). Stops if Secure Boot is on; first
         suspends BitLocker for one reboot if it protects the system drive.
      3. Creates C:\Temp and C:\Temp2, the driver's folders.
      4. With -EnableDriverVerifier, "verifier /flags 0x20 /driver TestDriver.sys" (deadlock
         detection; expected, NOT CONFIRMED: bug check 0xC4 with parameter 1 = 0x1000).
      5. Tells you to reboot (or reboots with -Restart): both settings need one.

    Why each step, and what it rests on: docs\windows.md, section 2. Run it in the VM only:
    test signing lowers the machine's protection, and the driver deadlocks two kernel threads.

    Assumptions (not verified here, no Windows was available when this was written):
      - The BCD WMI provider answers GetElement(0x16000049) on {current}
        ({fa926493-6f1c-4193-a414-58f0b2456d1e}) for an elevated PowerShell. Microsoft's
        "BCD WMI Provider Classes" page also asks for the Backup and Restore privileges,
        which the CIM cmdlets cannot enable; if the provider refuses, bcdedit is run.
      - verifier.exe exits with 0 or 2 when it accepted new settings (2 is read as
        "accepted, reboot required"); any other code is reported as a failure.

.PARAMETER TestFolder
    Folders to create. Default: C:\Temp and C:\Temp2, the paths hard-coded in the driver.

.PARAMETER EnableDriverVerifier
    Also enable Driver Verifier deadlock detection (flag 0x20) for TestDriver.sys.

.PARAMETER DriverImageName
    Image name given to Driver Verifier. Default: TestDriver.sys.

.PARAMETER Restart
    Restart the computer at the end if a setting changed that needs a reboot.

.EXAMPLE
    PS C:\> .\scripts\Initialize-TestVM.ps1 -WhatIf
    Shows what would change, changes nothing.

.EXAMPLE
    PS C:\> .\scripts\Initialize-TestVM.ps1 -Restart
    Turns test signing on, creates C:\Temp and C:\Temp2, reboots.

.EXAMPLE
    PS C:\> .\scripts\Initialize-TestVM.ps1 -EnableDriverVerifier
    Same, plus Driver Verifier deadlock detection for TestDriver.sys (reboot yourself).

.NOTES
    Undo everything with scripts\Remove-TestDriver.ps1 -DisableTestSigning -ResetVerifier.
#>
[CmdletBinding(SupportsShouldProcess)]
param(
    [string[]]$TestFolder = @('C:\Temp', 'C:\Temp2'),

    [switch]$EnableDriverVerifier,

    [string]$DriverImageName = 'TestDriver.sys',

    [switch]$Restart
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 2.0

Import-Module -Name (Join-Path $PSScriptRoot 'TestDriver.Common.psm1') -Force

function Test-SecureBootOn {
    try {
        return [bool](Confirm-SecureBootUEFI)
    }
    catch {
        # BIOS firmware, or the cmdlet is not supported: Secure Boot cannot be on.
        return $false
    }
}

# {current}: the boot entry of the running Windows; its testsigning flag is the BCD element
# BcdLibraryBoolean_AllowPrereleaseSignatures (BcdLibraryElementTypes, Microsoft's BCD WMI reference).
$BCD_CURRENT_ENTRY = '{fa926493-6f1c-4193-a414-58f0b2456d1e}'
$BCD_ALLOW_PRERELEASE_SIGNATURES = [uint32]0x16000049

# $true / $false: test signing configured for the next boot; $null: WMI could not tell (the provider
# refused: it wants privileges the CIM cmdlets cannot enable). Only $true skips bcdedit.
function Get-BcdTestSigning {
    try {
        $entry = New-CimInstance -Namespace 'root/WMI' -ClassName 'BcdObject' -Key @('Id', 'StoreFilePath') -ClientOnly `
            -Property @{ Id = $BCD_CURRENT_ENTRY; StoreFilePath = '' }
        $result = Invoke-CimMethod -InputObject $entry -MethodName 'GetElement' -Arguments @{ Type = $BCD_ALLOW_PRERELEASE_SIGNATURES }
        if (-not $result.ReturnValue) {
            return $false  # not set (never turned on), or refused: either way bcdedit runs
        }
        return [bool]$result.Element.Boolean
    }
    catch {
        Write-Verbose "BCD WMI provider did not answer GetElement (access denied without the Backup/Restore privileges?): $($_.Exception.Message)"
        return $null
    }
}

# 'On' when BitLocker protects the system drive, 'Off' (or 'Unknown') when not; $null when
# this Windows has no BitLocker cmdlets (Home editions) or the volume cannot be read.
function Get-SystemDriveBitLocker {
    if (-not (Get-Command -Name Get-BitLockerVolume -ErrorAction SilentlyContinue)) {
        return $null
    }
    try {
        return [string](Get-BitLockerVolume -MountPoint $env:SystemDrive).ProtectionStatus
    }
    catch {
        return $null
    }
}

Assert-Administrator

if (-not [Environment]::Is64BitOperatingSystem) {
    throw 'TestDriver.sys is an x64 driver: this Windows is 32-bit.'
}
$os = Get-CimInstance -ClassName Win32_OperatingSystem
Write-Host "Windows: $($os.Caption) build $($os.BuildNumber)"

$rebootNeeded = $false

# 1. Test signing (and, before touching the boot configuration, BitLocker)
$signing = [pscustomobject]@{ Active = (Test-TestSigningActive); Configured = (Get-BcdTestSigning) }
$secureBootOn = (-not $signing.Active) -and (Test-SecureBootOn)
if ($signing.Active) {
    Write-Host 'Test signing: active in this boot.'
}
elseif ($signing.Configured -eq $true -and -not $secureBootOn) {
    Write-Warning 'Test signing is configured but not active yet: reboot before installing the driver.'
    $rebootNeeded = $true
}
else {
    $bitLocker = Get-SystemDriveBitLocker
    if ($bitLocker -eq 'On') {
        $reason = 'the boot configuration change (bcdedit)'
        if ($secureBootOn) {
            $reason = 'turning Secure Boot off'
        }
        Write-Warning ("BitLocker protects ${env:SystemDrive}: $reason would make the next boot ask for the BitLocker " +
            'recovery key. Suspending it for one reboot (Suspend-BitLocker -RebootCount 1); it resumes by itself.')
        if ($PSCmdlet.ShouldProcess($env:SystemDrive, 'Suspend-BitLocker -RebootCount 1')) {
            Suspend-BitLocker -MountPoint $env:SystemDrive -RebootCount 1 | Out-Null
        }
    }
    elseif ($null -eq $bitLocker) {
        Write-Host 'BitLocker: no BitLocker cmdlets here (or the volume could not be read); if BitLocker protects this drive, suspend it first.'
    }
    if ($secureBootOn) {
        throw ('Secure Boot is on: bcdedit cannot turn test signing on while it is, and the loader would ignore it. ' +
            'Turn Secure Boot off in the VM settings (Hyper-V: Settings > Security > clear "Enable Secure Boot"), ' +
            'start the VM again and rerun this script.')
    }
    if ($null -eq $signing.Configured) {
        Write-Host 'Test signing: the boot configuration could not be read through WMI; setting it (bcdedit is idempotent).'
    }
    if ($PSCmdlet.ShouldProcess('boot configuration {current}', 'bcdedit /set testsigning on')) {
        $result = Invoke-NativeCommand -FilePath 'bcdedit.exe' -ArgumentList @('/set', 'testsigning', 'on')
        $result.Output | ForEach-Object { Write-Host "  $_" }
        if ($result.ExitCode -ne 0) {
            throw "bcdedit /set testsigning on failed with exit code $($result.ExitCode)."
        }
        Write-Host 'Test signing: turned on. It takes effect after a reboot ("Test Mode" shows on the desktop).'
        $rebootNeeded = $true
    }
}

# 2. Folders used by the driver's threads
foreach ($folder in $TestFolder) {
    if (Test-Path -LiteralPath $folder -PathType Container) {
        $count = @(Get-ChildItem -LiteralPath $folder -Force).Count
        Write-Host "Folder ${folder}: exists ($count item(s))."
        if ($count -gt 0) {
            Write-Warning "$folder is not empty. The demo's check is that C:\Temp stays empty: empty it first."
        }
    }
    elseif ($PSCmdlet.ShouldProcess($folder, 'Create folder')) {
        New-Item -ItemType Directory -Path $folder | Out-Null
        Write-Host "Folder ${folder}: created."
    }
}

# 3. Optional Driver Verifier deadlock detection
if ($EnableDriverVerifier -and $PSCmdlet.ShouldProcess($DriverImageName, 'verifier /flags 0x20 /driver (deadlock detection)')) {
    $result = Invoke-NativeCommand -FilePath 'verifier.exe' -ArgumentList @('/flags', '0x20', '/driver', $DriverImageName)
    $result.Output | ForEach-Object { Write-Host "  $_" }
    if (@(0, 2) -notcontains $result.ExitCode) {
        throw "verifier /flags 0x20 /driver $DriverImageName failed with exit code $($result.ExitCode)."
    }
    $rebootNeeded = $true
    $query = Invoke-NativeCommand -FilePath 'verifier.exe' -ArgumentList @('/querysettings')
    $query.Output | ForEach-Object { Write-Host "  $_" }
    if ($query.ExitCode -ne 0) {
        Write-Warning "verifier /querysettings exited with code $($query.ExitCode): check the settings by hand."
    }
    Write-Host ('Driver Verifier: deadlock detection set for ' + $DriverImageName +
        ' after the next reboot. Expected (not confirmed): bug check 0xC4 with parameter 1 = 0x1000, which ' +
        'Microsoft''s "Bug Check 0xC4" page lists as a self-deadlock, instead of a silent hang when the driver ' +
        'starts. Turn it off with "verifier /reset" and a reboot.')
}

if ($rebootNeeded) {
    Restart-ComputerIfRequested -Cmdlet $PSCmdlet -Restart:$Restart -Message @('',
        'REBOOT NEEDED: run Restart-Computer, then continue with scripts\Install-TestDriver.ps1.')
}
else {
    Write-Host ''
    Write-Host 'Ready: continue with scripts\Install-TestDriver.ps1.'
}
